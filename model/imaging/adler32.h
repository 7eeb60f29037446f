#ifndef MODEL_IMAGING_ADLER32_H_
#define MODEL_IMAGING_ADLER32_H_

// Adler-32 (RFC 1950), the checksum after every zlib stream: the request
// PNG's inflate and the mask PNG's deflate each run it over the whole
// image. zlib's adler32_z took 0.072 ms over the test slice's 262,656
// bytes of rows; this, 16 bytes at a time in SSE2, 0.014
// (docs/performance.md).

#include <cstddef>
#include <cstdint>

namespace unet {

// The Adler-32 of `size` bytes at `data`, continuing from `adler` (1 for a
// new stream, else an Adler-32: each half below 65521); the same value as
// zlib's adler32_z.
uint32_t Adler32(uint32_t adler, const uint8_t* data, size_t size);

}  // namespace unet

#endif  // MODEL_IMAGING_ADLER32_H_
