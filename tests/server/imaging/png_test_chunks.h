#ifndef TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_
#define TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_

// Writes PNG chunks for tests that build files byte by byte.

#include <string>

#include "model/imaging/png_chunk_writer.h"

namespace unet::testing {

// A chunk of `type` and `data`, its CRC right unless told otherwise.
inline std::string PngChunkBytes(const std::string& type,
                                 const std::string& data,
                                 bool right_crc = true) {
  std::string chunk;
  AppendPngChunk(chunk, type, data);
  if (!right_crc) chunk.back() ^= 1;
  return chunk;
}

}  // namespace unet::testing

#endif  // TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_
