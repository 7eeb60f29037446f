#include "model/unet.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/onednn_conv.h"

namespace unet {
namespace {

namespace F = torch::nn::functional;

// Cuts the centre (height, width) window out of an NCHW feature map.
torch::Tensor CenterCrop(const torch::Tensor& x, int64_t height,
                         int64_t width) {
  const int64_t top = (x.size(2) - height) / 2;
  const int64_t left = (x.size(3) - width) / 2;
  return x.narrow(2, top, height).narrow(3, left, width);
}

// LibTorch runs 2x2 stride-2 transposed convolutions on CPUs through its
// generic BLAS (slow_conv_transpose2d), and 1x1 convolutions too when a pass
// has one thread; with Debian's reference BLAS that was a fifth of a pass
// (docs/performance.md). Both are 1x1 convolutions, the transposed one
// followed by a pixel shuffle, which oneDNN runs directly. Only without
// gradients: training keeps the modules' own autograd path.
bool UseOneDnn(const torch::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == torch::kFloat32 && at::hasMKLDNN() &&
         at::globalContext().userEnabledMkldnn() &&
         !torch::GradMode::is_enabled();
}

torch::Tensor OneByOne(const torch::Tensor& x, const torch::Tensor& weight,
                       const torch::Tensor& bias) {
  return at::mkldnn_convolution(x, weight, bias, /*padding=*/{0, 0},
                                /*stride=*/{1, 1}, /*dilation=*/{1, 1},
                                /*groups=*/1);
}

torch::Tensor UpConvolve(torch::nn::ConvTranspose2dImpl& up,
                         const torch::Tensor& x) {
  if (!UseOneDnn(x)) return up.forward(x);
  // weight (in, out, 2, 2) -> (out * 4, in, 1, 1), channel o * 4 + dy * 2 +
  // dx feeding output pixel (2y + dy, 2x + dx), as pixel_shuffle reads it.
  const torch::Tensor& w = up.weight;
  const torch::Tensor as_one_by_one =
      w.permute({1, 2, 3, 0}).reshape({w.size(1) * 4, w.size(0), 1, 1});
  return torch::pixel_shuffle(
      OneByOne(x, as_one_by_one.contiguous(), up.bias.repeat_interleave(4)), 2);
}

torch::Tensor Head(torch::nn::Conv2dImpl& head, const torch::Tensor& x) {
  if (!UseOneDnn(x)) return head.forward(x);
  return OneByOne(x, head.weight, head.bias);
}

// Draws weights from a Gaussian with standard deviation sqrt(2 / N), N the
// incoming nodes of a neuron, as the paper does; biases start at zero.
void InitializeAsPaper(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& conv : module.modules(/*include_self=*/false)) {
    for (auto& item : conv->named_parameters(/*recurse=*/false)) {
      if (item.key() == "weight") {
        torch::nn::init::kaiming_normal_(item.value(), 0.0, torch::kFanIn,
                                         torch::kReLU);
      } else if (item.key() == "bias") {
        item.value().zero_();
      }
    }
  }
}

// Copies the tensors stored under `archive` into `module`'s parameters and
// buffers, recursively, converting each to the module's dtype: a file in
// another precision loads correctly, and one of another shape is refused.
// (torch::load would take tensors of any shape, and on some LibTorch
// versions reinterpret another dtype's bytes.)
absl::Status CopyStored(torch::nn::Module& module,
                        torch::serialize::InputArchive& archive,
                        const std::string& prefix) {
  const auto copy = [&](const std::string& name, torch::Tensor& target,
                        bool is_buffer) -> absl::Status {
    torch::Tensor stored;  // undefined: takes the file's tensor as it is
    if (!archive.try_read(name, stored, is_buffer)) {
      return absl::FailedPreconditionError(
          absl::StrCat(prefix, name, " is missing"));
    }
    if (stored.sizes() != target.sizes()) {
      return absl::FailedPreconditionError(
          absl::StrCat(prefix, name, " has another shape"));
    }
    torch::NoGradGuard no_grad;
    target.copy_(stored);
    return absl::OkStatus();
  };
  for (auto& item : module.named_parameters(/*recurse=*/false)) {
    absl::Status copied = copy(item.key(), item.value(), false);
    if (!copied.ok()) return copied;
  }
  for (auto& item : module.named_buffers(/*recurse=*/false)) {
    absl::Status copied = copy(item.key(), item.value(), true);
    if (!copied.ok()) return copied;
  }
  for (const auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      return absl::FailedPreconditionError(
          absl::StrCat(prefix, child.key(), " is missing"));
    }
    absl::Status copied = CopyStored(*child.value(), child_archive,
                                     absl::StrCat(prefix, child.key(), "."));
    if (!copied.ok()) return copied;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadWeights(UNet& net, const std::filesystem::path& path) {
  absl::Status copied;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    copied = CopyStored(*net, archive, "");
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read ", path.string(), ": ", e.what_without_backtrace()));
  }
  if (!copied.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the weights in ", path.filename().string(),
        " do not match the architecture in model.json: ", copied.message()));
  }
  return absl::OkStatus();
}

UNetOptions OptionsFromArchitecture(
    const segmentation::v1::Architecture& architecture) {
  UNetOptions options;
  options.input_channels = architecture.input_channels();
  options.num_classes = architecture.num_classes();
  options.channels.assign(architecture.channels().begin(),
                          architecture.channels().end());
  options.retain_dim = architecture.retain_dim();
  return options;
}

DoubleConvImpl::DoubleConvImpl(int64_t in_channels, int64_t out_channels)
    : conv1_(
          register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                       in_channels, out_channels, 3)))),
      conv2_(
          register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                       out_channels, out_channels, 3)))) {}

torch::Tensor DoubleConvImpl::forward(torch::Tensor x) {
  if (UseOneDnn(x) && HasFusedConvolveRelu() &&
      conv1_->weight.scalar_type() == torch::kFloat32) {
    x = ConvolveRelu(x, conv1_->weight, conv1_->bias);
    return ConvolveRelu(x, conv2_->weight, conv2_->bias);
  }
  return torch::relu(conv2_(torch::relu(conv1_(x))));
}

UNetImpl::UNetImpl(const UNetOptions& options) : options_(options) {
  const auto& chs = options_.channels;
  TORCH_CHECK(!chs.empty(), "a U-Net needs at least one level");
  int64_t in = options_.input_channels;
  for (int64_t out : chs) {
    encoder_->push_back(DoubleConv(in, out));
    in = out;
  }
  for (size_t level = chs.size() - 1; level > 0; --level) {
    upconvs_->push_back(torch::nn::ConvTranspose2d(
        torch::nn::ConvTranspose2dOptions(chs[level], chs[level - 1], 2)
            .stride(2)));
    decoder_->push_back(DoubleConv(2 * chs[level - 1], chs[level - 1]));
  }
  register_module("encoder", encoder_);
  register_module("upconvs", upconvs_);
  register_module("decoder", decoder_);
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout));
  head_ = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                      chs.front(), options_.num_classes, 1)));
  InitializeAsPaper(*this);
}

torch::Tensor UNetImpl::forward(torch::Tensor x) {
  const int64_t in_height = x.size(2), in_width = x.size(3);
  std::vector<torch::Tensor> skips;
  for (size_t level = 0; level < encoder_->size(); ++level) {
    if (level > 0) x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2));
    x = encoder_[level]->as<DoubleConv>()->forward(x);
    if (level + 1 < encoder_->size()) skips.push_back(x);
  }
  x = dropout_(x);
  for (size_t step = 0; step < upconvs_->size(); ++step) {
    x = UpConvolve(*upconvs_[step]->as<torch::nn::ConvTranspose2d>(), x);
    const torch::Tensor& skip = skips[skips.size() - 1 - step];
    x = torch::cat({x, CenterCrop(skip, x.size(2), x.size(3))}, 1);
    x = decoder_[step]->as<DoubleConv>()->forward(x);
  }
  x = Head(*head_, x);
  if (options_.retain_dim) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{in_height, in_width})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  }
  return x;
}

}  // namespace unet
