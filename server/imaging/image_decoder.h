#ifndef SERVER_IMAGING_IMAGE_DECODER_H_
#define SERVER_IMAGING_IMAGE_DECODER_H_

// Turns the image of a request into pixels, rejecting what cannot be one.

#include <cstdint>
#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {

// Decodes `image` (encoded bytes in any format OpenCV reads, or raw pixels)
// into an HxW matrix of 1 to 4 channels, of depth 8U, 16U or 32F. Colour
// images come out in RGB(A) order. Returns INVALID_ARGUMENT for empty or
// undecodable bytes, raw data whose size does not match its header, or more
// than `max_pixels` pixels.
absl::StatusOr<cv::Mat> DecodeImage(const segmentation::v1::Image& image,
                                    int64_t max_pixels);

}  // namespace unet

#endif  // SERVER_IMAGING_IMAGE_DECODER_H_
