#ifndef TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_
#define TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_

// Writes PNG chunks for tests that build files byte by byte.

#include <zlib.h>

#include <cstdint>
#include <string>

namespace unet::testing {

inline void AppendPngUint32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(value >> shift));
  }
}

// A chunk of `type` and `data`, its CRC right unless told otherwise.
inline std::string PngChunkBytes(const std::string& type,
                                 const std::string& data,
                                 bool right_crc = true) {
  std::string chunk;
  AppendPngUint32(chunk, static_cast<uint32_t>(data.size()));
  const std::string typed = type + data;
  chunk += typed;
  const uint32_t crc =
      crc32(0, reinterpret_cast<const Bytef*>(typed.data()), typed.size());
  AppendPngUint32(chunk, right_crc ? crc : crc ^ 1);
  return chunk;
}

}  // namespace unet::testing

#endif  // TESTS_SERVER_IMAGING_PNG_TEST_CHUNKS_H_
