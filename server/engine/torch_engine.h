#ifndef SERVER_ENGINE_TORCH_ENGINE_H_
#define SERVER_ENGINE_TORCH_ENGINE_H_

// The LibTorch implementation of InferenceEngine: loads LibTorch checkpoints
// of the C++ U-Net and TorchScript modules saved from Python, and runs them
// on the CPU or a CUDA device at the precision asked for.

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/inference_engine.h"

namespace unet {

struct EngineOptions {
  std::string device = "cpu";      // as ResolveDevices returns it
  std::string precision = "fp32";  // fp32, fp16 or bf16 (weights and math)
  bool channels_last = false;      // NHWC activations, faster on tensor cores
  // On CUDA, every batch size 1..max_batch_size is run once at the padded
  // size of a warmup_image_side image before the engine is handed out, so
  // that cuDNN has chosen its kernels before the first request.
  int max_batch_size = 1;
  int warmup_image_side = 512;
};

// Expands a comma-separated device list ("cpu", "cuda", "cuda:0,cuda:1";
// empty: cuda:0 when available, else cpu) into device names, or
// INVALID_ARGUMENT for an unknown or absent device.
absl::StatusOr<std::vector<std::string>> ResolveDevices(
    const std::string& requested);

// Checks that `precision` is one LibTorch runs on `device`.
absl::Status CheckPrecision(const std::string& precision,
                            const std::string& device);

// Loads one version, checks it against `config` (weight shapes; a pass that
// gives finite logits of the expected shape) and warms it up.
absl::StatusOr<std::unique_ptr<InferenceEngine>> LoadTorchEngine(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const EngineOptions& options);

// Sets LibTorch's intra-op threads for the workers (0: leave its default);
// at 1, also gives the calling thread's team back (ReleaseIntraOpThreads).
void SetCpuThreads(int threads);

// Gives the calling thread's OpenMP team back: its idle threads exit. Once
// a process holds more OpenMP threads than CPUs, counting every thread's
// idle team, libgomp's threads stop spinning at a barrier and sleep on a
// futex instead; a team left behind by the thread that loaded a model made
// each pass of a worker 13 % slower on the development machine (about 140
// sleeps a pass instead of 1, docs/performance.md). LoadTorchEngine calls
// it before returning. Does nothing without OpenMP.
void ReleaseIntraOpThreads();

// Returns (device, bytes in use) for each visible GPU, as the CUDA driver
// reports it (all allocations on the card); empty without CUDA.
std::vector<std::pair<std::string, double>> DeviceMemoryInUse();

// Returns the bytes LibTorch's CUDA caching allocator holds on `device`
// (reserved from the driver, in use or cached); 0 on the CPU.
int64_t CachingAllocatorReservedBytes(const std::string& device);

// Runs the engine's module alone once on a random batch of `shape` kept on
// its device, and waits for it: one pass of a plain LibTorch program.
absl::Status RunRawForward(InferenceEngine& engine,
                           const std::vector<int64_t>& shape);

// Times RunRawForward on `shape` for at least `seconds`: the speed of a plain
// LibTorch program, which the benchmark holds the server against. Returns
// images per second.
absl::StatusOr<double> MeasureRawForward(InferenceEngine& engine,
                                         const std::vector<int64_t>& shape,
                                         double seconds);

}  // namespace unet

#endif  // SERVER_ENGINE_TORCH_ENGINE_H_
