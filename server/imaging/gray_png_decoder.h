#ifndef SERVER_IMAGING_GRAY_PNG_DECODER_H_
#define SERVER_IMAGING_GRAY_PNG_DECODER_H_

// A fast path for the PNGs imaging pipelines send most: one channel, 8 or 16
// bits, not interlaced. libpng, through OpenCV, unfilters these with generic
// code and inflates a row at a time: the benchmark's 512 x 512 EM slice
// (Paeth-filtered) took it 2.9 ms; this path takes about 1.05
// (docs/performance.md).

#include <opencv2/core.hpp>
#include <optional>

#include "absl/strings/string_view.h"
#include "server/imaging/image_decoder.h"

namespace unet {

// Decodes `bytes` when they are such a PNG and wholly regular: every chunk's
// CRC right, only chunks that cannot change the pixels besides IHDR, IDAT and
// IEND, one zlib stream that ends exactly with the last row, nothing after
// IEND, and a size within `limits`. Returns nullopt otherwise, and then
// OpenCV decides, so a Mat from here is the one cv::imdecode with
// IMREAD_UNCHANGED returns for the same bytes (CV_8UC1 or CV_16UC1, native
// byte order; an 8-bit one may be a view with a longer step). Never
// throws.
std::optional<cv::Mat> DecodeGrayPng(absl::string_view bytes,
                                     const DecodeLimits& limits);

}  // namespace unet

#endif  // SERVER_IMAGING_GRAY_PNG_DECODER_H_
