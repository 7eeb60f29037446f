#include "model/imaging/png_chunk_writer.h"

#include <zlib.h>

namespace unet {

uint32_t PngChunkCrc(absl::string_view type_and_data) {
  return static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(type_and_data.data()),
              type_and_data.size()));
}

void AppendPngUint32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(value >> shift));
  }
}

void AppendPngChunk(std::string& out, absl::string_view type,
                    absl::string_view data) {
  AppendPngUint32(out, static_cast<uint32_t>(data.size()));
  const size_t typed = out.size();
  out.append(type.data(), type.size());
  out.append(data.data(), data.size());
  AppendPngUint32(out, PngChunkCrc(absl::string_view(out).substr(typed)));
}

}  // namespace unet
