#include "server/imaging/image_decoder.h"

#include <cstdlib>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace unet {
namespace {

using segmentation::v1::Image;
using segmentation::v1::PixelType;
using segmentation::v1::RawImage;

constexpr int kMaxChannels = 4;

absl::Status CheckPixelCount(int64_t width, int64_t height,
                             int64_t max_pixels) {
  if (width * height > max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", width, "x", height, " = ", width * height,
                     " pixels; this server takes at most ", max_pixels));
  }
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> DecodeRaw(const RawImage& raw, int64_t max_pixels) {
  int depth = 0;
  switch (raw.pixel_type()) {
    case segmentation::v1::PIXEL_TYPE_UINT8:
      depth = CV_8U;
      break;
    case segmentation::v1::PIXEL_TYPE_UINT16:
      depth = CV_16U;
      break;
    case segmentation::v1::PIXEL_TYPE_FLOAT32:
      depth = CV_32F;
      break;
    default:
      return absl::InvalidArgumentError("raw image has no pixel_type");
  }
  if (raw.width() == 0 || raw.height() == 0) {
    return absl::InvalidArgumentError("raw image has zero width or height");
  }
  if (raw.channels() < 1 || raw.channels() > kMaxChannels) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image has ", raw.channels(),
                     " channels; expected 1 to ", kMaxChannels));
  }
  const int64_t width = raw.width(), height = raw.height();
  if (auto status = CheckPixelCount(width, height, max_pixels); !status.ok()) {
    return status;
  }
  const int type = CV_MAKETYPE(depth, static_cast<int>(raw.channels()));
  const int64_t expected = width * height * CV_ELEM_SIZE(type);
  if (static_cast<int64_t>(raw.data().size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image data has ", raw.data().size(), " bytes; a ",
                     width, "x", height, "x", raw.channels(),
                     " image of this pixel type has ", expected));
  }
  // Copy: the request's bytes do not outlive the RPC handler.
  return cv::Mat(static_cast<int>(height), static_cast<int>(width), type,
                 const_cast<char*>(raw.data().data()))
      .clone();
}

uint32_t BigEndian32(const std::string& b, size_t at) {
  return static_cast<uint32_t>(static_cast<uint8_t>(b[at])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3]));
}

uint16_t BigEndian16(const std::string& b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) << 8 |
                               static_cast<uint8_t>(b[at + 1]));
}

int64_t LittleEndianAbs32(const std::string& b, size_t at) {
  int32_t value = 0;
  std::memcpy(&value, b.data() + at, sizeof(value));  // x86 and ARM: LE
  return std::abs(static_cast<int64_t>(value));
}

// An unsigned integer of `size` bytes at `at`, in the given byte order.
uint32_t ReadUnsigned(const std::string& b, size_t at, int size,
                      bool big_endian) {
  uint32_t value = 0;
  for (int i = 0; i < size; ++i) {
    const uint32_t byte = static_cast<uint8_t>(b[at + i]);
    value |= big_endian ? byte << 8 * (size - 1 - i) : byte << 8 * i;
  }
  return value;
}

// The width x height of a classic TIFF's first image (the one OpenCV
// decodes), from tags 256 and 257 of its first directory; 0 when it cannot
// tell (then the pixel count is checked after decoding).
int64_t TiffDeclaredPixels(const std::string& b) {
  const bool big_endian = b[0] == 'M';
  const uint32_t directory = ReadUnsigned(b, 4, 4, big_endian);
  if (directory + 2 > b.size()) return 0;
  const uint32_t entries = ReadUnsigned(b, directory, 2, big_endian);
  int64_t width = 0, height = 0;
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = directory + 2 + 12 * size_t{i};
    if (entry + 12 > b.size()) return 0;
    const uint32_t tag = ReadUnsigned(b, entry, 2, big_endian);
    const uint32_t type = ReadUnsigned(b, entry + 2, 2, big_endian);
    // SHORT (3) values sit in the first two bytes of the field, LONG (4) in
    // all four.
    const int64_t value =
        ReadUnsigned(b, entry + 8, type == 3 ? 2 : 4, big_endian);
    if (tag == 256) width = value;
    if (tag == 257) height = value;
  }
  return width * height;
}

// Returns the pixel count a PNG, JPEG, BMP or TIFF header declares, or 0 when
// the bytes are none of those (or too short to tell). Checked before
// decoding, so that a small file declaring a huge image costs no memory.
int64_t DeclaredPixels(const std::string& b) {
  if (b.size() >= 24 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 &&
      b.compare(12, 4, "IHDR") == 0) {
    return int64_t{BigEndian32(b, 16)} * BigEndian32(b, 20);
  }
  if (b.size() >= 26 && b[0] == 'B' && b[1] == 'M') {
    return LittleEndianAbs32(b, 18) * LittleEndianAbs32(b, 22);
  }
  if (b.size() >= 8 &&
      (b.compare(0, 4, "II*\0", 4) == 0 || b.compare(0, 4, "MM\0*", 4) == 0)) {
    return TiffDeclaredPixels(b);
  }
  if (b.size() >= 4 && static_cast<uint8_t>(b[0]) == 0xFF &&
      static_cast<uint8_t>(b[1]) == 0xD8) {
    // Walk the JPEG segments to the first start-of-frame marker.
    for (size_t at = 2; at + 9 < b.size();) {
      if (static_cast<uint8_t>(b[at]) != 0xFF) return 0;
      const uint8_t marker = static_cast<uint8_t>(b[at + 1]);
      const bool start_of_frame = marker >= 0xC0 && marker <= 0xCF &&
                                  marker != 0xC4 && marker != 0xC8 &&
                                  marker != 0xCC;
      if (start_of_frame) {
        return int64_t{BigEndian16(b, at + 5)} * BigEndian16(b, at + 7);
      }
      at += 2 + BigEndian16(b, at + 2);
    }
  }
  return 0;
}

absl::StatusOr<cv::Mat> DecodeEncoded(const std::string& bytes,
                                      int64_t max_pixels) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty");
  if (const int64_t declared = DeclaredPixels(bytes); declared > max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image declares ", declared,
                     " pixels; this server takes at most ", max_pixels));
  }
  cv::Mat decoded;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                         const_cast<char*>(bytes.data()));
    decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decode image: ", e.what()));
  }
  if (decoded.empty()) {
    return absl::InvalidArgumentError(
        "cannot decode image: not a format OpenCV reads, or corrupt");
  }
  if (auto status = CheckPixelCount(decoded.cols, decoded.rows, max_pixels);
      !status.ok()) {
    return status;
  }
  switch (decoded.depth()) {
    case CV_8U:
    case CV_16U:
    case CV_32F:
      break;
    case CV_64F:
      decoded.convertTo(decoded, CV_32F);
      break;
    default:
      return absl::InvalidArgumentError(
          "image has signed integer pixels; expected unsigned 8/16-bit or "
          "float");
  }
  // OpenCV decodes colour as BGR(A); models see RGB(A), as raw images give.
  if (decoded.channels() == 3)
    cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
  if (decoded.channels() == 4) {
    cv::cvtColor(decoded, decoded, cv::COLOR_BGRA2RGBA);
  }
  return decoded;
}

}  // namespace

absl::StatusOr<cv::Mat> DecodeImage(const Image& image, int64_t max_pixels) {
  switch (image.source_case()) {
    case Image::kEncoded:
      return DecodeEncoded(image.encoded(), max_pixels);
    case Image::kRaw:
      return DecodeRaw(image.raw(), max_pixels);
    default:
      return absl::InvalidArgumentError("request has no image");
  }
}

}  // namespace unet
