#include "server/torch_engine.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <functional>
#include <map>

// CUDA builds of LibTorch bring the CUDA runtime's headers; CPU builds do not.
#if __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define UNET_HAVE_CUDA_RUNTIME 1
#endif

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_repository.h"
#include "model/unet.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

using ForwardFn = std::function<torch::Tensor(const torch::Tensor&)>;

std::string Describe(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

class TorchEngine final : public InferenceEngine {
 public:
  TorchEngine(torch::Device device, ForwardFn forward)
      : device_(device), forward_(std::move(forward)) {}

  absl::StatusOr<FloatTensor> Forward(const FloatTensor& batch) override {
    int64_t elements = 1;
    for (int64_t d : batch.shape) elements *= d;
    if (batch.shape.size() != 4 ||
        elements != static_cast<int64_t>(batch.values.size())) {
      return absl::InvalidArgumentError("batch is not a dense NCHW tensor");
    }
    try {
      c10::InferenceMode inference_mode;
      // from_blob does not copy; the batch outlives the call.
      const torch::Tensor input =
          torch::from_blob(const_cast<float*>(batch.values.data()), batch.shape,
                           torch::kFloat32)
              .to(device_);
      const torch::Tensor logits =
          forward_(input).to(torch::kCPU, torch::kFloat32).contiguous();
      FloatTensor result;
      result.shape = logits.sizes().vec();
      result.values.assign(logits.data_ptr<float>(),
                           logits.data_ptr<float>() + logits.numel());
      return result;
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("forward failed: ", Describe(e)));
    }
  }

  std::string device() const override { return device_.str(); }

 private:
  const torch::Device device_;
  ForwardFn forward_;
};

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

ShapeMap ParameterShapes(const torch::nn::Module& module) {
  ShapeMap shapes;
  for (const auto& item : module.named_parameters()) {
    shapes[item.key()] = item.value().sizes().vec();
  }
  return shapes;
}

// torch::load replaces tensors whatever their shape, so a checkpoint of
// another architecture would load; compare against the config's instead.
absl::StatusOr<ForwardFn> LoadLibTorch(const std::string& path,
                                       const ModelConfig& config,
                                       torch::Device device) {
  UNet net(OptionsFromArchitecture(config.architecture()));
  const ShapeMap expected = ParameterShapes(*net);
  torch::load(net, path);
  if (ParameterShapes(*net) != expected) {
    return absl::FailedPreconditionError(
        "the weights in model.pt do not match the architecture in model.json");
  }
  net->eval();
  net->to(device);
  return ForwardFn([net](const torch::Tensor& x) mutable { return net(x); });
}

ForwardFn LoadTorchScript(const std::string& path, torch::Device device) {
  torch::jit::Module module = torch::jit::load(path, device);
  module.eval();
  return [module](const torch::Tensor& x) mutable {
    return module.forward({x}).toTensor();
  };
}

// Runs one pass on the smallest valid input and checks what comes out.
absl::Status WarmUp(InferenceEngine& engine, const ModelConfig& config) {
  const auto& arch = config.architecture();
  const int levels = arch.channels_size();
  const int side = ValidInputSides(levels).minimum;
  FloatTensor input{{1, arch.input_channels(), side, side}, {}};
  input.values.resize(arch.input_channels() * side * side);
  for (size_t i = 0; i < input.values.size(); ++i) {
    input.values[i] = static_cast<float>(i % 97) / 97.0f;
  }
  ASSIGN_OR_RETURN(const FloatTensor output, engine.Forward(input));
  const int64_t out_side = arch.retain_dim() ? side : *OutputSide(side, levels);
  const std::vector<int64_t> expected = {1, arch.num_classes(), out_side,
                                         out_side};
  if (output.shape != expected) {
    return absl::FailedPreconditionError(
        "the model's output shape does not match model.json");
  }
  for (float v : output.values) {
    if (!std::isfinite(v)) {
      return absl::FailedPreconditionError("warm-up gave non-finite logits");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ResolveDevice(const std::string& requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested.empty()) return std::string(cuda ? "cuda:0" : "cpu");
  if (requested == "cpu") return requested;
  int index = 0;
  if (requested != "cuda" &&
      !(absl::StartsWith(requested, "cuda:") &&
        absl::SimpleAtoi(requested.substr(5), &index) && index >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", requested, "\" is not cpu, cuda or cuda:N"));
  }
  if (!cuda || index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", requested, " is not available"));
  }
  return absl::StrCat("cuda:", index);
}

std::vector<std::pair<std::string, double>> DeviceMemoryInUse() {
  std::vector<std::pair<std::string, double>> in_use;
#ifdef UNET_HAVE_CUDA_RUNTIME
  if (!torch::cuda::is_available()) return in_use;
  for (int device = 0; device < static_cast<int>(torch::cuda::device_count());
       ++device) {
    size_t free_bytes = 0, total_bytes = 0;
    // The current device is per thread; this is the scraping thread.
    if (cudaSetDevice(device) == cudaSuccess &&
        cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      in_use.emplace_back(absl::StrCat("cuda:", device),
                          static_cast<double>(total_bytes - free_bytes));
    }
  }
#endif
  return in_use;
}

absl::StatusOr<std::unique_ptr<InferenceEngine>> LoadTorchEngine(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const std::string& device) {
  const std::string path = (version_dir / kWeightsFile).string();
  std::unique_ptr<InferenceEngine> engine;
  try {
    const torch::Device torch_device(device);
    ForwardFn forward;
    if (config.format() == kFormatTorchScript) {
      forward = LoadTorchScript(path, torch_device);
    } else {
      ASSIGN_OR_RETURN(forward, LoadLibTorch(path, config, torch_device));
    }
    engine = std::make_unique<TorchEngine>(torch_device, std::move(forward));
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load ", path, ": ", Describe(e)));
  }
  const absl::Status warm = WarmUp(*engine, config);
  if (!warm.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(version_dir.string(), ": ", warm.message()));
  }
  return engine;
}

}  // namespace unet
