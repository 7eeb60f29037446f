#ifndef MODEL_IMAGING_PREPROCESS_H_
#define MODEL_IMAGING_PREPROCESS_H_

// Turns decoded pixels into the network's input.
//
// The network's convolutions are unpadded: an output pixel sees
// ContextMargin() pixels of input on each side. The image is therefore
// mirrored out by that margin, and further to the next valid input size, so
// that the output covers every input pixel with real context and no content is
// cropped away. A model with `architecture.retain_dim` stretches its output
// over its whole input itself (the seed's behaviour): its image is mirrored
// only out to the next valid size, without the margin.
// postprocess.h cuts the mask out of the output at the image's place.

#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace unet {

struct PreparedImage {
  int channels = 0;
  int height = 0, width = 0;                // of the request's image
  int padded_height = 0, padded_width = 0;  // of the network input
  int pad_top = 0, pad_left = 0;            // where the image sits in it
  std::vector<float> chw;                   // normalised input, CHW
};

struct InputSize {
  int64_t height = 0, width = 0;
  int64_t pixels() const { return height * width; }
};

// Returns the size of the network input a `height` x `width` image is padded
// to for `config`, without allocating anything: callers check it against
// their budget before Preprocess.
InputSize PaddedInputSize(int64_t height, int64_t width,
                          const ModelConfig& config);

// INVALID_ARGUMENT when `image` has another channel count than the model
// takes.
absl::Status CheckInputChannels(const cv::Mat& image,
                                const ModelConfig& config);

// Checks the channel count against the model, scales the pixels to [0, 1] by
// their type's range, normalises them as `config` says and mirror-pads them
// to a valid input size. INVALID_ARGUMENT for a channel count the model does
// not take, RESOURCE_EXHAUSTED when memory runs out. Never throws.
absl::StatusOr<PreparedImage> Preprocess(const cv::Mat& image,
                                         const ModelConfig& config);

// A window of the endlessly mirrored image, for tiling: the network input it
// takes and the image pixels its output is used for. Coordinates are the
// image's; the input may reach into the mirrored border (negative, or past
// the image).
struct InputWindow {
  int input_top = 0, input_left = 0;
  int input_height = 0, input_width = 0;  // a valid input size
  int written_top = 0, written_left = 0;
  int written_height = 0, written_width = 0;
};

// Like Preprocess, for one window of the image: the PreparedImage's input is
// the window's, mirrored exactly as Preprocess mirrors the whole image, and
// its height, width and pads place the written pixels for postprocess.
// Only for models whose output is their input less the context margin on
// each side (not retain_dim).
absl::StatusOr<PreparedImage> PrepareWindow(const cv::Mat& image,
                                            const ModelConfig& config,
                                            const InputWindow& window);

}  // namespace unet

#endif  // MODEL_IMAGING_PREPROCESS_H_
