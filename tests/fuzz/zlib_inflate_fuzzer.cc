// Differential: unet::InflateZlibExactly against zlib itself on the same
// stream: the input's bytes after the first, which the PNG fast path's
// inflate reads cut into parts of that many bytes (0: one part), as IDAT
// chunks cut it. zlib inflates them into a buffer of up to 1 MiB; the stream
// counts as whole when zlib reaches its end (Adler-32 checked) with no byte
// left over. InflateZlibExactly, asked for exactly as many bytes as zlib
// produced, must then accept and give the same bytes, and refuse one byte
// more or less; when zlib fails, it must refuse.

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/imaging/zlib_inflate.h"

namespace {

constexpr size_t kMaxOutput = size_t{1} << 20;

[[noreturn]] void Fail(const char* what, size_t size) {
  std::fprintf(stderr, "zlib_inflate differs from zlib: %s (size %zu)\n", what,
               size);
  std::abort();
}

// What zlib makes of `stream`: whether it is whole, and its output so far.
bool ZlibInflate(absl::string_view stream, std::vector<uint8_t>& out,
                 bool& too_long) {
  out.assign(kMaxOutput, 0);
  z_stream z{};
  if (inflateInit(&z) != Z_OK) std::abort();
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data()));
  z.avail_in = static_cast<uInt>(stream.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int result = inflate(&z, Z_FINISH);
  too_long = z.avail_out == 0 && result != Z_STREAM_END;
  out.resize(z.total_out);
  inflateEnd(&z);
  return result == Z_STREAM_END && z.avail_in == 0;
}

bool Ours(const std::vector<absl::string_view>& parts, size_t size,
          std::vector<uint8_t>& out) {
  // A buffer of exactly `size`, so that ASan sees any write past it.
  out.assign(size, 0xa5);
  return unet::InflateZlibExactly(parts, absl::MakeSpan(out));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const absl::string_view stream(reinterpret_cast<const char*>(data + 1),
                                 size - 1);
  // Each part in a heap block of its own (not a std::string, which keeps
  // short ones inline), so that ASan sees a read past one part's end
  // rather than the next part's bytes.
  std::vector<std::vector<char>> copies;
  const size_t cut = data[0] == 0 ? stream.size() : data[0];
  for (size_t at = 0; at < stream.size(); at += cut) {
    const absl::string_view part = stream.substr(at, cut);
    copies.emplace_back(part.begin(), part.end());
  }
  std::vector<absl::string_view> parts;
  for (const std::vector<char>& copy : copies) {
    parts.emplace_back(copy.data(), copy.size());
  }
  std::vector<uint8_t> expected, ours;
  bool too_long = false;
  const bool whole = ZlibInflate(stream, expected, too_long);
  if (too_long) return 0;  // beyond what this compares
  const size_t produced = expected.size();
  if (Ours(parts, produced, ours) != whole) {
    Fail(whole ? "refused a whole stream" : "accepted a stream zlib refuses",
         produced);
  }
  if (whole && ours != expected) Fail("other bytes", produced);
  if (Ours(parts, produced + 1, ours)) Fail("accepted one byte more", produced);
  if (produced > 0 && Ours(parts, produced - 1, ours)) {
    Fail("accepted one byte less", produced);
  }
  return 0;
}
