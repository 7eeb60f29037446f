#ifndef MODEL_IMAGING_PNG_CHUNK_WRITER_H_
#define MODEL_IMAGING_PNG_CHUNK_WRITER_H_

// The pieces of a PNG file (the signature, then chunks of length, type,
// data and CRC), for code that writes one byte by byte: the mask writer
// and the tests that build hostile files.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace unet {

inline constexpr absl::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

// The CRC a chunk stores: of its type and data, which lie side by side.
uint32_t PngChunkCrc(absl::string_view type_and_data);

// A PNG's unsigned 32-bit integers are big-endian.
void AppendPngUint32(std::string& out, uint32_t value);

// Appends the chunk of `type` (4 letters) and `data`, its CRC computed.
void AppendPngChunk(std::string& out, absl::string_view type,
                    absl::string_view data);

}  // namespace unet

#endif  // MODEL_IMAGING_PNG_CHUNK_WRITER_H_
