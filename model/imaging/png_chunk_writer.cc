#include "model/imaging/png_chunk_writer.h"

#include <zlib.h>

#include <algorithm>

namespace unet {

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
  // The CRC covers the type and the data; zlib counts in 32 bits a call.
  uLong crc = crc32(0, nullptr, 0);
  for (size_t at = typed; at < out.size();) {
    const size_t piece = std::min<size_t>(out.size() - at, uInt{1} << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + at),
                static_cast<uInt>(piece));
    at += piece;
  }
  AppendPngUint32(out, static_cast<uint32_t>(crc));
}

}  // namespace unet
