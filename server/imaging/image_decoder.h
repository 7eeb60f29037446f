#ifndef SERVER_IMAGING_IMAGE_DECODER_H_
#define SERVER_IMAGING_IMAGE_DECODER_H_

// Turns the image of a request into pixels, rejecting what cannot be one.
//
// Every byte may be hostile. Encoded images are accepted only in the formats
// on the allow-list, told by their signature; a PNG's chunk lengths are
// checked against the file before libpng reads them (png_chunks.h), and a
// regular grayscale PNG takes a faster path (gray_png_decoder.h); OpenCV
// itself refuses, from the header and before allocating, images beyond the
// limits (see opencv_limits.h, which must be in force); raw headers are
// checked side by side before any product is formed.

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {

struct DecodeLimits {
  int64_t max_pixels = int64_t{4096} * 4096;  // width x height
  int64_t max_side = 65536;                   // width and height each
};

// The formats the decoder accepts, and the ones it recognises only to name
// them in the refusal.
enum class ImageFormat {
  kUnknown,
  kPng,
  kTiff,
  kJpeg,
  kBmp,
  // Recognised, refused:
  kDicom,
  kWebP,
  kJpeg2000,
  kRadianceHdr,
  kPortableAnymap,  // PBM, PGM, PPM, PAM, PFM
  kSunRaster,
  kOpenExr,
  kGif,
};

// Tells the format of `bytes` by its signature.
ImageFormat SniffImageFormat(absl::string_view bytes);

// Returns a format's name for messages ("PNG", "WebP", ...).
absl::string_view ImageFormatName(ImageFormat format);

// Decodes `image` (encoded PNG, TIFF, JPEG or BMP bytes, or raw pixels) into
// an HxW matrix of 1 to 4 channels, of depth 8U, 16U or 32F. Colour images
// come out in RGB(A) order. INVALID_ARGUMENT for a format off the
// allow-list, undecodable bytes, raw data whose size does not match its
// header, or an image beyond `limits`; RESOURCE_EXHAUSTED when memory runs
// out. Never throws.
absl::StatusOr<cv::Mat> DecodeImage(const segmentation::v1::Image& image,
                                    const DecodeLimits& limits);

}  // namespace unet

#endif  // SERVER_IMAGING_IMAGE_DECODER_H_
