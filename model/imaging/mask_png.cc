#include "model/imaging/mask_png.h"

#include <cstring>
#include <vector>

#include "model/imaging/png_chunk_writer.h"
#include "model/imaging/run_deflate.h"

namespace unet {

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
  const std::string compressed = DeflateRuns(absl::string_view(
      reinterpret_cast<const char*>(rows.data()), rows.size()));
  if (compressed.size() > 0x7fffffff) {  // PNG's largest chunk
    return absl::ResourceExhaustedError("the mask is too large for a PNG");
  }
  std::string header;
  AppendPngUint32(header, static_cast<uint32_t>(mask.cols));
  AppendPngUint32(header, static_cast<uint32_t>(mask.rows));
  header.append("\x08\x00\x00\x00\x00", 5);  // 8-bit gray, no interlace
  std::string png(kPngSignature);
  png.reserve(kPngSignature.size() + 3 * 12 + header.size() +
              compressed.size());
  AppendPngChunk(png, "IHDR", header);
  AppendPngChunk(png, "IDAT", compressed);
  AppendPngChunk(png, "IEND", "");
  return png;
}

}  // namespace unet
