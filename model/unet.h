#ifndef MODEL_UNET_H_
#define MODEL_UNET_H_

// The U-Net of Ronneberger et al. (2015) as a LibTorch module: unpadded 3x3
// convolutions, 2x2 max-pools, 2x2 up-convolutions, centre crop and
// concatenation of the contracting path's features, and a 1x1 head.

#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "segmentation/v1/model_config.pb.h"

namespace unet {

struct UNetOptions {
  int64_t input_channels = 1;
  int64_t num_classes = 2;
  // Channels of each contracting-path block; the expanding path mirrors them.
  std::vector<int64_t> channels = {64, 128, 256, 512, 1024};
  // Interpolate the logits bilinearly back to the input size (the seed's
  // option); off, the output is smaller than the input by the context margin.
  bool retain_dim = false;
  // Dropout probability at the end of the contracting path (training only).
  double dropout = 0.0;
};

// Returns the options that `architecture` (from model.json) describes.
UNetOptions OptionsFromArchitecture(
    const segmentation::v1::Architecture& architecture);

// Two unpadded 3x3 convolutions, each followed by ReLU.
class DoubleConvImpl : public torch::nn::Module {
 public:
  DoubleConvImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
};
TORCH_MODULE(DoubleConv);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetOptions& options = {});

  // Maps (N, input_channels, H, W) images to (N, num_classes, h, w) logits.
  torch::Tensor forward(torch::Tensor x);

  const UNetOptions& options() const { return options_; }

 private:
  UNetOptions options_;
  torch::nn::ModuleList encoder_, upconvs_, decoder_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(UNet);

// Loads weights saved by torch::save(net) into `net`, converted to its
// dtype whatever precision the file stores them in (model.json's
// weights_precision says which, for readers). A checkpoint of another
// architecture, and an unreadable one, fail (FAILED_PRECONDITION).
absl::Status LoadWeights(UNet& net, const std::filesystem::path& path);

}  // namespace unet

#endif  // MODEL_UNET_H_
