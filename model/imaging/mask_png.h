#ifndef MODEL_IMAGING_MASK_PNG_H_
#define MODEL_IMAGING_MASK_PNG_H_

// Writes masks as PNG faster than OpenCV: a mask is long runs of a few
// labels, which compress well without a filter as runs alone
// (run_deflate.h), where libpng weighs a filter for every row and zlib
// searches every byte for a match.

#include <string>

#include "absl/status/statusor.h"
#include "opencv2/core.hpp"

namespace unet {

// An 8-bit grayscale PNG of `mask` (CV_8UC1): the same pixels any PNG
// decoder reads back. INVALID_ARGUMENT for another type or an empty mask.
absl::StatusOr<std::string> EncodeMaskPng(const cv::Mat& mask);

}  // namespace unet

#endif  // MODEL_IMAGING_MASK_PNG_H_
