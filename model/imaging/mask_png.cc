#include "model/imaging/mask_png.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <vector>

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
  z_stream stream{};
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15, 8, Z_RLE) != Z_OK) {
    return absl::ResourceExhaustedError("cannot start zlib");
  }
  std::string png("\x89PNG\r\n\x1a\n", 8);
  size_t start = png.size();
  png.append(8, '\0');
  AppendUint32(png, static_cast<uint32_t>(mask.cols));
  AppendUint32(png, static_cast<uint32_t>(mask.rows));
  png.append("\x08\x00\x00\x00\x00", 5);  // 8-bit gray, deflate, no interlace
  CloseChunk(png, start, "IHDR");

  // zlib counts in 32 bits a call: a giant mask goes in pieces.
  constexpr size_t kPiece = size_t{1} << 18;
  start = png.size();
  png.append(8, '\0');
  const size_t data_start = png.size();
  size_t consumed = 0;
  int result = Z_OK;
  while (result != Z_STREAM_END) {
    if (stream.avail_in == 0 && consumed < rows.size()) {
      const size_t piece = std::min(rows.size() - consumed, kPiece << 10);
      stream.next_in = rows.data() + consumed;
      stream.avail_in = static_cast<uInt>(piece);
      consumed += piece;
    }
    const size_t written = data_start + stream.total_out;
    png.resize(written + kPiece);
    stream.next_out = reinterpret_cast<Bytef*>(png.data() + written);
    stream.avail_out = static_cast<uInt>(kPiece);
    result = deflate(&stream, consumed == rows.size() ? Z_FINISH : Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) {
      deflateEnd(&stream);
      return absl::InternalError("zlib could not compress the mask");
    }
  }
  png.resize(data_start + stream.total_out);
  deflateEnd(&stream);
  if (stream.total_out > 0x7fffffff) {  // PNG's largest chunk
    return absl::ResourceExhaustedError("the mask is too large for a PNG");
  }
  CloseChunk(png, start, "IDAT");

  start = png.size();
  png.append(8, '\0');
  CloseChunk(png, start, "IEND");
  return png;
}

}  // namespace unet
