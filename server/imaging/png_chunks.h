#ifndef SERVER_IMAGING_PNG_CHUNKS_H_
#define SERVER_IMAGING_PNG_CHUNKS_H_

// The chunk layout of PNG files (the signature, then chunks of length, type,
// data and CRC), read without trusting a declared length.

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "model/imaging/png_chunk_writer.h"  // kPngSignature

namespace unet {

// A PNG's unsigned 32-bit integers are big-endian.
uint32_t PngUint32(const char* bytes);

struct PngChunk {
  absl::string_view type, data;
  uint32_t crc = 0;  // as stored

  // Whether the stored CRC is that of the type and data.
  bool CrcIsRight() const;
};

// Splits the chunk at the front of `rest` off it, when `rest` holds all of
// it and its length is one the standard allows (below 2^31).
std::optional<PngChunk> NextPngChunk(absl::string_view& rest);

// INVALID_ARGUMENT unless every chunk of `png` up to IEND lies within it.
// libpng acts on a declared length before it knows whether the bytes exist,
// and for some chunks allocates and clears that much first: 1.7 GB and 6 s
// for a 418-byte file (an image_decoder_encoded fuzzer find). A file that
// fails this, libpng refuses too, once it has read on past its end.
absl::Status CheckPngChunkLengths(absl::string_view png);

}  // namespace unet

#endif  // SERVER_IMAGING_PNG_CHUNKS_H_
