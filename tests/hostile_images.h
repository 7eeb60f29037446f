#ifndef TESTS_HOSTILE_IMAGES_H_
#define TESTS_HOSTILE_IMAGES_H_

// Small encoded images whose headers lie, for tests of the decoder and of the
// server's edge.

#include <cstdint>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace unet::testing {

// The CRC-32 of PNG chunks (ISO 3309), so that a patched header stays valid.
inline uint32_t Crc32(absl::string_view bytes) {
  uint32_t crc = 0xFFFFFFFF;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ (0xEDB88320 & (0u - (crc & 1)));
    }
  }
  return ~crc;
}

// A valid 4 x 4 PNG whose IHDR claims width x height, its CRC correct.
inline std::string PngClaiming(uint32_t width, uint32_t height) {
  std::vector<uint8_t> encoded;
  cv::imencode(".png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(9)), encoded);
  std::string png(encoded.begin(), encoded.end());
  auto put_big_endian = [&png](size_t at, uint32_t value) {
    for (int i = 0; i < 4; ++i) png[at + i] = char(value >> (24 - 8 * i));
  };
  put_big_endian(16, width);
  put_big_endian(20, height);
  put_big_endian(29, Crc32(absl::string_view(png).substr(12, 17)));
  return png;
}

}  // namespace unet::testing

#endif  // TESTS_HOSTILE_IMAGES_H_
