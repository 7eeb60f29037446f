#include "server/engine/torch_engine.h"

#include <torch/script.h>
#include <torch/torch.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <fstream>
#include <functional>
#include <map>
#include <optional>

// CMake defines UNET_WITH_CUDA against a CUDA build of LibTorch.
#ifdef UNET_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
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

// Whether `e` reports memory running out: CUDA's OutOfMemoryError,
// std::bad_alloc, or LibTorch 1.13's CPU allocator, which throws a plain
// c10::Error.
bool IsOutOfMemory(const std::exception& e) {
  return dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr ||
         dynamic_cast<const std::bad_alloc*>(&e) != nullptr ||
         absl::StrContains(Describe(e), "can't allocate memory");
}

// The status for an exception from LibTorch while `doing`: memory running
// out can pass (RESOURCE_EXHAUSTED); anything else is `otherwise`.
absl::Status FromTorchException(const std::exception& e,
                                absl::string_view doing,
                                absl::StatusCode otherwise) {
  const std::string message = absl::StrCat(doing, ": ", Describe(e));
  if (IsOutOfMemory(e)) return absl::ResourceExhaustedError(message);
  return absl::Status(otherwise, message);
}

// OpenMP keeps its thread count per calling thread; without this a worker
// thread runs LibTorch's CPU kernels on fewer threads than the process was
// given.
void UseProcessThreads() {
  static thread_local const bool threads_set = (at::init_num_threads(), true);
  (void)threads_set;
}

class TorchEngine final : public InferenceEngine {
 public:
  TorchEngine(torch::Device device, torch::ScalarType dtype, bool channels_last,
              ForwardFn forward)
      : device_(device),
        dtype_(dtype),
        channels_last_(channels_last),
        forward_(std::move(forward)) {
#ifdef UNET_WITH_CUDA
    // A stream of its own, so that two instances on one GPU overlap one's
    // copies and host work with the other's kernels.
    if (device_.is_cuda()) {
      stream_.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false,
                                                   device_.index()));
    }
#endif
  }

  absl::StatusOr<FloatTensor> Forward(const FloatTensor& batch) override {
    return Run<FloatTensor>(batch, [](const torch::Tensor& logits) {
      const torch::Tensor host =
          logits.to(torch::kCPU, torch::kFloat32).contiguous();
      FloatTensor result{host.sizes().vec(), {}};
      result.values.assign(host.data_ptr<float>(),
                           host.data_ptr<float>() + host.numel());
      return absl::StatusOr<FloatTensor>(std::move(result));
    });
  }

  absl::StatusOr<LabelTensor> ForwardLabels(const FloatTensor& batch) override {
    return Run<LabelTensor>(
        batch, [](const torch::Tensor& logits) -> absl::StatusOr<LabelTensor> {
          if (logits.dim() != 4 || logits.size(1) < 1 || logits.size(1) > 256) {
            return absl::InternalError(
                "model returned logits of an unusable shape");
          }
          if (logits.is_cpu()) {
            // In the logits' own layout: for the shipped model's 516 x 516
            // channels-last output LibTorch's argmax(1) took 2.4 ms, a
            // masked_fill per class 1.7 ms, this 0.06 ms.
            const torch::Tensor scores = logits.to(torch::kFloat32);
            const auto size = scores.sizes(), stride = scores.strides();
            const std::array<int64_t, 4> shape = {size[0], size[1], size[2],
                                                  size[3]};
            const std::array<int64_t, 4> strides = {stride[0], stride[1],
                                                    stride[2], stride[3]};
            LabelTensor labels{{size[0], size[2], size[3]}, {}};
            labels.values.resize(size[0] * size[2] * size[3]);
            // On all of the worker's intra-op threads: a lone request's
            // pass has two on this machine.
            at::parallel_for(0, size[0] * size[2], /*grain_size=*/16,
                             [&](int64_t begin, int64_t end) {
                               ArgMaxRows(scores.data_ptr<float>(), shape,
                                          strides, begin, end,
                                          labels.values.data());
                             });
            return labels;
          }
          // The arg max on the device: one byte a pixel crosses the bus.
          const torch::Tensor host =
              logits.argmax(1).to(torch::kUInt8).to(torch::kCPU).contiguous();
          LabelTensor result{host.sizes().vec(), {}};
          result.values.assign(host.data_ptr<uint8_t>(),
                               host.data_ptr<uint8_t>() + host.numel());
          return result;
        });
  }

  std::string device() const override { return device_.str(); }

  // Runs the module alone once on a random batch of `shape` kept on the
  // device (made on the first call with that shape), as a plain LibTorch
  // program would run it, and waits for it to finish.
  absl::Status RawPass(const std::vector<int64_t>& shape) {
    if (shape.size() != 4) return absl::InvalidArgumentError("not NCHW");
    try {
      UseProcessThreads();
      c10::InferenceMode inference_mode;
      StreamGuard guard;
      Enter(guard);
      if (!raw_input_.defined() || raw_input_.sizes().vec() != shape) {
        raw_input_ = torch::rand(
            shape, torch::TensorOptions().device(device_).dtype(dtype_));
        if (channels_last_) {
          raw_input_ = raw_input_.contiguous(torch::MemoryFormat::ChannelsLast);
        }
      }
      forward_(raw_input_);
      Synchronize();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return FromTorchException(e, "raw forward failed",
                                absl::StatusCode::kInternal);
    }
  }

  ~TorchEngine() override {
    forward_ = nullptr;  // frees the module's weights
#ifdef UNET_WITH_CUDA
    // Hand the freed blocks back to the driver, so that a reload does not
    // leave the card's memory with LibTorch's cache.
    if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  }

 private:
#ifdef UNET_WITH_CUDA
  using StreamGuard = std::optional<c10::cuda::CUDAStreamGuard>;
  // Makes this engine's device and stream current for the calling thread
  // while `guard` lives.
  void Enter(StreamGuard& guard) {
    if (stream_) guard.emplace(*stream_);
  }
  void Synchronize() {
    if (stream_) stream_->synchronize();
  }
  std::optional<c10::cuda::CUDAStream> stream_;
#else
  using StreamGuard = bool;
  void Enter(StreamGuard&) {}
  void Synchronize() {}
#endif

  // Runs the network on `batch` and hands its logits, still on the device,
  // to `result`; every exception becomes a status.
  template <typename Result, typename ResultFn>
  absl::StatusOr<Result> Run(const FloatTensor& batch, ResultFn result) {
    int64_t elements = 1;
    for (int64_t d : batch.shape) elements *= d;
    if (batch.shape.size() != 4 ||
        elements != static_cast<int64_t>(batch.values.size())) {
      return absl::InvalidArgumentError("batch is not a dense NCHW tensor");
    }
    try {
      UseProcessThreads();
      c10::InferenceMode inference_mode;
      StreamGuard guard;
      Enter(guard);
      // from_blob does not copy; the batch outlives the call.
      torch::Tensor input =
          torch::from_blob(const_cast<float*>(batch.values.data()), batch.shape,
                           torch::kFloat32);
      if (device_.is_cuda()) {
        // Stage in pinned memory (LibTorch's caching host allocator reuses
        // the blocks), so that the copy to the GPU is a DMA.
        input = input.pin_memory().to(device_, dtype_, /*non_blocking=*/true);
      } else {
        input = input.to(dtype_);
      }
      if (channels_last_) {
        input = input.contiguous(torch::MemoryFormat::ChannelsLast);
      }
      return result(forward_(input));
    } catch (const std::exception& e) {
#ifdef UNET_WITH_CUDA
      // Give the failed pass's blocks back before a smaller batch is tried.
      if (device_.is_cuda() && IsOutOfMemory(e)) {
        c10::cuda::CUDACachingAllocator::emptyCache();
      }
#endif
      return FromTorchException(e, "forward failed",
                                absl::StatusCode::kInternal);
    }
  }

  const torch::Device device_;
  const torch::ScalarType dtype_;
  const bool channels_last_;
  ForwardFn forward_;
  torch::Tensor raw_input_;  // RawPass's batch
};

torch::ScalarType DtypeOf(const std::string& precision) {
  if (precision == "fp16") return torch::kHalf;
  if (precision == "bf16") return torch::kBFloat16;
  return torch::kFloat32;
}

// Moves parameters and buffers to the device and dtype, and 4-D weights to
// channels-last when asked.
template <typename Params>
void Place(Params params, const EngineOptions& options) {
  torch::NoGradGuard no_grad;
  const torch::Device device(options.device);
  for (auto param : params) {
    torch::Tensor placed = param.to(device, DtypeOf(options.precision));
    if (options.channels_last && placed.dim() == 4) {
      placed = placed.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    param.set_data(placed);
  }
}

absl::StatusOr<ForwardFn> LoadLibTorch(const std::string& path,
                                       const ModelConfig& config,
                                       const EngineOptions& options) {
  UNet net(OptionsFromArchitecture(config.architecture()));
  RETURN_IF_ERROR(LoadWeights(net, path));
  net->eval();
  Place(net->parameters(), options);
  Place(net->buffers(), options);
  return ForwardFn([net](const torch::Tensor& x) mutable { return net(x); });
}

ForwardFn LoadTorchScript(const std::string& path,
                          const EngineOptions& options) {
  torch::jit::Module module =
      torch::jit::load(path, torch::Device(options.device));
  module.eval();
  Place(module.parameters(), options);
  Place(module.buffers(), options);
  return [module](const torch::Tensor& x) mutable {
    return module.forward({x}).toTensor();
  };
}

// Runs one pass on the smallest valid input and checks what comes out.
absl::Status CheckOutput(InferenceEngine& engine, const ModelConfig& config) {
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

// Runs every batch size once at the padded size of a typical image, so that
// cuDNN's autotuner has picked its kernels before the first request.
absl::Status WarmUpBatchSizes(InferenceEngine& engine,
                              const ModelConfig& config,
                              const EngineOptions& options) {
  const auto& arch = config.architecture();
  const int levels = arch.channels_size();
  const int side = NextValidInputSide(
      options.warmup_image_side + 2 * ContextMargin(levels), levels);
  for (int batch = 1; batch <= options.max_batch_size; ++batch) {
    FloatTensor input{{batch, arch.input_channels(), side, side}, {}};
    input.values.assign(batch * arch.input_channels() * side * side, 0.5f);
    RETURN_IF_ERROR(engine.ForwardLabels(input).status());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveDevices(
    const std::string& requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested.empty())
    return std::vector<std::string>{cuda ? "cuda:0" : "cpu"};
  std::vector<std::string> devices;
  for (absl::string_view name : absl::StrSplit(requested, ',')) {
    if (name == "cpu") {
      devices.emplace_back(name);
      continue;
    }
    int index = 0;
    if (name != "cuda" && !(absl::ConsumePrefix(&name, "cuda:") &&
                            absl::SimpleAtoi(name, &index) && index >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device \"", requested, "\" is not cpu, cuda or cuda:N"));
    }
    if (!cuda || index >= static_cast<int>(torch::cuda::device_count())) {
      return absl::InvalidArgumentError(
          absl::StrCat("device cuda:", index, " is not available"));
    }
    devices.push_back(absl::StrCat("cuda:", index));
  }
  return devices;
}

absl::Status CheckPrecision(const std::string& precision,
                            const std::string& device) {
  if (precision != "fp32" && precision != "fp16" && precision != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat(
        "precision \"", precision, "\" is not fp32, fp16 or bf16"));
  }
  // LibTorch's CPU kernels lack half precision for some U-Net layers (1.13
  // has no bf16 transposed convolution).
  if (precision != "fp32" && device == "cpu") {
    return absl::InvalidArgumentError(
        absl::StrCat(precision, " needs a CUDA device"));
  }
  return absl::OkStatus();
}

void SetCpuThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
  if (threads == 1) ReleaseIntraOpThreads();
}

void ReleaseIntraOpThreads() {
#ifdef _OPENMP
  omp_pause_resource_all(omp_pause_soft);
#endif
}

std::vector<std::pair<std::string, double>> DeviceMemoryInUse() {
  std::vector<std::pair<std::string, double>> in_use;
#ifdef UNET_WITH_CUDA
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

int64_t CachingAllocatorReservedBytes(const std::string& device) {
#ifdef UNET_WITH_CUDA
  const torch::Device cuda(device);
  if (!cuda.is_cuda()) return 0;
  // Index 0 is the aggregate over small and large pools.
  return c10::cuda::CUDACachingAllocator::getDeviceStats(
             cuda.has_index() ? cuda.index() : 0)
      .reserved_bytes[0]
      .current;
#else
  (void)device;
  return 0;
#endif
}

absl::Status RunRawForward(InferenceEngine& engine,
                           const std::vector<int64_t>& shape) {
  auto* torch_engine = dynamic_cast<TorchEngine*>(&engine);
  if (torch_engine == nullptr) {
    return absl::InvalidArgumentError("not a LibTorch engine");
  }
  return torch_engine->RawPass(shape);
}

absl::StatusOr<double> MeasureRawForward(InferenceEngine& engine,
                                         const std::vector<int64_t>& shape,
                                         double seconds) {
  for (int i = 0; i < 3; ++i) RETURN_IF_ERROR(RunRawForward(engine, shape));
  const absl::Time start = absl::Now();
  int passes = 0;
  while (passes < 3 || absl::ToDoubleSeconds(absl::Now() - start) < seconds) {
    RETURN_IF_ERROR(RunRawForward(engine, shape));
    ++passes;
  }
  return passes * shape[0] / absl::ToDoubleSeconds(absl::Now() - start);
}

absl::StatusOr<std::unique_ptr<InferenceEngine>> LoadTorchEngine(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const EngineOptions& options) {
  RETURN_IF_ERROR(CheckPrecision(options.precision, options.device));
  // Loading and checking ran passes on this thread, which serves none.
  absl::Cleanup release_threads = [] { ReleaseIntraOpThreads(); };
  const std::string path = (version_dir / kWeightsFile).string();
  // A file that cannot be opened may be an I/O error that passes, or one
  // still being copied in; the manager retries UNAVAILABLE.
  if (!std::ifstream(path, std::ios::binary).good()) {
    return absl::UnavailableError(absl::StrCat("cannot open ", path));
  }
  std::unique_ptr<InferenceEngine> engine;
  try {
    const torch::Device device(options.device);
    if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
    ForwardFn forward;
    if (config.format() == kFormatTorchScript) {
      forward = LoadTorchScript(path, options);
    } else {
      ASSIGN_OR_RETURN(forward, LoadLibTorch(path, config, options));
    }
#ifdef UNET_WITH_CUDA
    // Placing the weights (dtype, layout) ran kernels on this thread's
    // stream; the engine's own stream does not wait for it.
    if (device.is_cuda()) {
      c10::cuda::getCurrentCUDAStream(device.has_index() ? device.index() : 0)
          .synchronize();
    }
#endif
    engine = std::make_unique<TorchEngine>(device, DtypeOf(options.precision),
                                           options.channels_last,
                                           std::move(forward));
  } catch (const std::exception& e) {
    return FromTorchException(e, absl::StrCat("cannot load ", path),
                              absl::StatusCode::kFailedPrecondition);
  }
  absl::Status ready = CheckOutput(*engine, config);
  if (ready.ok() && torch::Device(options.device).is_cuda()) {
    ready = WarmUpBatchSizes(*engine, config, options);
  }
  if (!ready.ok()) {
    // Out of memory in warm-up (the old version still holds the card) can
    // pass; a model that computes the wrong thing cannot.
    return absl::Status(
        absl::IsResourceExhausted(ready)
            ? absl::StatusCode::kResourceExhausted
            : absl::StatusCode::kFailedPrecondition,
        absl::StrCat(version_dir.string(), ": ", ready.message()));
  }
  return engine;
}

}  // namespace unet
