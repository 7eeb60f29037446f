#ifndef MODEL_IMAGING_POSTPROCESS_H_
#define MODEL_IMAGING_POSTPROCESS_H_

// Turns the network's output for one image back into a mask of exactly the
// image's size, and encodes it for the reply.

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/imaging/preprocess.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {

struct Segmentation {
  cv::Mat mask;  // CV_8U, the image's size: the most probable class
  // Soft-max probabilities, class-major (C x H x W); empty unless asked for.
  std::vector<float> probabilities;
};

// Cuts the image's window out of one image's logits (classes x out_height x
// out_width, as the network returned for `image`) and takes the most probable
// class of each pixel.
absl::StatusOr<Segmentation> ExtractSegmentation(const float* logits,
                                                 int classes, int out_height,
                                                 int out_width,
                                                 const PreparedImage& image,
                                                 bool with_probabilities);

// Cuts the image's window out of one image's class labels (out_height x
// out_width, as InferenceEngine::ForwardLabels returned them for `image`).
absl::StatusOr<cv::Mat> ExtractMask(const uint8_t* labels, int out_height,
                                    int out_width, const PreparedImage& image);

// Encodes an 8-bit mask as `encoding` asks (PNG, or raw row-major bytes).
absl::StatusOr<std::string> EncodeMask(const cv::Mat& mask,
                                       segmentation::v1::MaskEncoding encoding);

}  // namespace unet

#endif  // MODEL_IMAGING_POSTPROCESS_H_
