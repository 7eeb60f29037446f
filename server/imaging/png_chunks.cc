#include "server/imaging/png_chunks.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace unet {
namespace {

constexpr uint32_t kMaxChunkLength = 0x7fffffff;

}  // namespace

uint32_t PngUint32(const char* bytes) {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes);
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 |
         b[3];
}

bool PngChunk::CrcIsRight() const {
  // The type and the data lie side by side in the file.
  return PngChunkCrc(
             absl::string_view(type.data(), type.size() + data.size())) == crc;
}

std::optional<PngChunk> NextPngChunk(absl::string_view& rest) {
  if (rest.size() < 12) return std::nullopt;
  const uint32_t length = PngUint32(rest.data());
  if (length > kMaxChunkLength || length > rest.size() - 12) {
    return std::nullopt;
  }
  PngChunk chunk{rest.substr(4, 4), rest.substr(8, length),
                 PngUint32(rest.data() + 8 + length)};
  rest.remove_prefix(12 + length);
  return chunk;
}

absl::Status CheckPngChunkLengths(absl::string_view png) {
  if (!absl::StartsWith(png, kPngSignature)) {
    return absl::InvalidArgumentError("PNG signature missing");
  }
  absl::string_view rest = png.substr(kPngSignature.size());
  while (true) {
    const size_t offset = png.size() - rest.size();
    if (rest.size() < 12) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PNG file ends at byte ", png.size(), " before its IEND chunk"));
    }
    const uint32_t length = PngUint32(rest.data());
    const std::optional<PngChunk> chunk = NextPngChunk(rest);
    if (!chunk) {
      // Numbers only: the chunk's type is the client's bytes.
      return absl::InvalidArgumentError(
          absl::StrCat("PNG chunk at byte ", offset, " declares ", length,
                       " bytes of data; the file has ",
                       png.size() - offset - 12, " after its header"));
    }
    if (chunk->type == "IEND") return absl::OkStatus();
  }
}

}  // namespace unet
