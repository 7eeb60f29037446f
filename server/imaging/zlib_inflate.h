#ifndef SERVER_IMAGING_ZLIB_INFLATE_H_
#define SERVER_IMAGING_ZLIB_INFLATE_H_

// A whole-stream inflate for the PNG fast path: the image's size is known
// before its data is read, so the stream is inflated into its final buffer
// in one call, with a 64-bit bit buffer, single-lookup tables for most
// codes, and word copies while far from the output's end. zlib took
// 0.87 ms for the test slice's stream, this 0.69 (docs/performance.md).
// It accepts no stream zlib refuses (tests/fuzz/zlib_inflate_fuzzer.cc
// holds it to zlib): libdeflate, faster still, accepts codes zlib refuses,
// so that the fast path would decode PNGs OpenCV refuses.

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace unet {

// Inflates the zlib stream (RFC 1950 around RFC 1951) made of `parts`, one
// after another (a PNG's IDAT chunks), into `out`. True only when zlib's
// inflate, given the same bytes, returns exactly out.size() bytes, these,
// and then the stream's end with its Adler-32 right and not a byte left: a
// header asking for no dictionary, every block and code set valid under
// zlib's rules, no distance reaching before the start. Otherwise false, with
// `out`'s contents unspecified. Never reads outside `parts` or writes outside
// `out`.
bool InflateZlibExactly(absl::Span<const absl::string_view> parts,
                        absl::Span<uint8_t> out);

}  // namespace unet

#endif  // SERVER_IMAGING_ZLIB_INFLATE_H_
