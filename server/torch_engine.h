#ifndef SERVER_TORCH_ENGINE_H_
#define SERVER_TORCH_ENGINE_H_

// The LibTorch implementation of InferenceEngine: loads LibTorch checkpoints
// of the C++ U-Net and TorchScript modules saved from Python.

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/inference_engine.h"

namespace unet {

// Returns the device a server should use for `requested` ("cpu", "cuda",
// "cuda:N"; empty: cuda when available, else cpu), or INVALID_ARGUMENT.
absl::StatusOr<std::string> ResolveDevice(const std::string& requested);

// Loads one version onto `device` (as ResolveDevice returns), checks it and
// warms it up; see EngineLoader.
absl::StatusOr<std::unique_ptr<InferenceEngine>> LoadTorchEngine(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const std::string& device);

// Returns (device, bytes in use) for each visible GPU, as the CUDA driver
// reports it (all allocations on the card); empty without CUDA.
std::vector<std::pair<std::string, double>> DeviceMemoryInUse();

}  // namespace unet

#endif  // SERVER_TORCH_ENGINE_H_
