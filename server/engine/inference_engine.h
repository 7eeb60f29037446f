#ifndef SERVER_ENGINE_INFERENCE_ENGINE_H_
#define SERVER_ENGINE_INFERENCE_ENGINE_H_

// The seam between the server and LibTorch: plain types only, so that the
// request path compiles without torch headers and tests can use a fake.

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace unet {

// A dense float32 tensor, row-major (NCHW for images).
struct FloatTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Per-pixel class indices, row-major (N, H, W).
struct LabelTensor {
  std::vector<int64_t> shape;
  std::vector<uint8_t> values;
};

// The most probable class of each pixel of (N, classes, H, W) logits laid
// out with `strides` (in elements; channels-last has class stride 1), as
// uint8 (N, H, W). Ranks as LibTorch's argmax(1) does on every device: ties
// go to the lower class, and NaN outranks every number (the first NaN wins).
// At most 256 classes.
LabelTensor ArgMaxOverClasses(const float* logits,
                              const std::array<int64_t, 4>& shape,
                              const std::array<int64_t, 4>& strides);

// Writes the rows [first_row, end_row) of ArgMaxOverClasses's output into
// `labels` (all N x H x W of it), counting rows over the images (n * H + y):
// parts of one output can be made on several threads.
void ArgMaxRows(const float* logits, const std::array<int64_t, 4>& shape,
                const std::array<int64_t, 4>& strides, int64_t first_row,
                int64_t end_row, uint8_t* labels);

// One loaded model version on one device. Forward may be called from one
// thread at a time.
class InferenceEngine {
 public:
  virtual ~InferenceEngine() = default;

  // Runs the network on a batch (N, C, H, W) of one valid input size and
  // returns its logits (N, classes, h, w).
  virtual absl::StatusOr<FloatTensor> Forward(const FloatTensor& batch) = 0;

  // Runs the network and returns the most probable class of each output
  // pixel (N, h, w). This default takes the arg max of Forward's logits on
  // the host; a GPU engine takes it on the device and copies back one byte
  // a pixel instead of a float per class.
  virtual absl::StatusOr<LabelTensor> ForwardLabels(const FloatTensor& batch);

  // Returns the device the engine runs on, e.g. "cpu" or "cuda:0".
  virtual std::string device() const = 0;
};

// Loads the version in `version_dir` (model.pt, as `config` describes it) for
// execution slot `slot` (the slot decides the device), checks the weights
// against `config` and warms it up.
using EngineLoader =
    std::function<absl::StatusOr<std::unique_ptr<InferenceEngine>>(
        const std::filesystem::path& version_dir, const ModelConfig& config,
        int slot)>;

}  // namespace unet

#endif  // SERVER_ENGINE_INFERENCE_ENGINE_H_
