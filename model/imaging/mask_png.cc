#include "model/imaging/mask_png.h"

#include <zlib.h>

#include <cstring>
#include <vector>

#include "model/imaging/run_deflate.h"

namespace unet {
namespace {

void AppendUint32(std::string& out, uint32_t value) {
  const char bytes[4] = {
      static_cast<char>(value >> 24), static_cast<char>(value >> 16),
      static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 4);
}

// Appends a chunk whose data the caller already appended after an 8-byte
// gap left at `start` for its length and type: fills those, adds the CRC.
void CloseChunk(std::string& out, size_t start, const char* type) {
  const size_t length = out.size() - start - 8;
  std::string header;
  AppendUint32(header, static_cast<uint32_t>(length));
  header.append(type, 4);
  out.replace(start, 8, header);
  const uLong crc =
      crc32(0, reinterpret_cast<const Bytef*>(out.data() + start + 4),
            static_cast<uInt>(length + 4));
  AppendUint32(out, static_cast<uint32_t>(crc));
}

}  // namespace

absl::StatusOr<std::string> EncodeMaskPng(const cv::Mat& mask) {
  if (mask.type() != CV_8UC1 || mask.empty()) {
    return absl::InvalidArgumentError(
        "a mask PNG takes an 8-bit 1-channel image");
  }
  // Each row behind its filter byte, 0: none.
  const size_t stride = 1 + static_cast<size_t>(mask.cols);
  std::vector<uint8_t> rows(stride * mask.rows, 0);
  for (int y = 0; y < mask.rows; ++y) {
    std::memcpy(rows.data() + y * stride + 1, mask.ptr<uint8_t>(y), mask.cols);
  }
  std::string png("\x89PNG\r\n\x1a\n", 8);
  size_t start = png.size();
  png.append(8, '\0');
  AppendUint32(png, static_cast<uint32_t>(mask.cols));
  AppendUint32(png, static_cast<uint32_t>(mask.rows));
  png.append("\x08\x00\x00\x00\x00", 5);  // 8-bit gray, deflate, no interlace
  CloseChunk(png, start, "IHDR");

  const std::string compressed = DeflateRuns(absl::string_view(
      reinterpret_cast<const char*>(rows.data()), rows.size()));
  if (compressed.size() > 0x7fffffff) {  // PNG's largest chunk
    return absl::ResourceExhaustedError("the mask is too large for a PNG");
  }
  start = png.size();
  png.append(8, '\0');
  png.append(compressed);
  CloseChunk(png, start, "IDAT");

  start = png.size();
  png.append(8, '\0');
  CloseChunk(png, start, "IEND");
  return png;
}

}  // namespace unet
