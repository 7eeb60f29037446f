#ifndef MODEL_MODEL_WRITER_H_
#define MODEL_MODEL_WRITER_H_

// Writes LibTorch-format model versions into a model root (layout in
// model_repository.h), atomically.

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/unet.h"

namespace unet {

// The optimizer's state, kept beside the weights so training can resume.
inline constexpr char kOptimizerFile[] = "optimizer.pt";

// Returns the newest version of `name` under `model_root`, 0 when none.
absl::StatusOr<int64_t> NewestVersion(const std::filesystem::path& model_root,
                                      const std::string& name);

// Returns NewestVersion + 1.
absl::StatusOr<int64_t> NextVersion(const std::filesystem::path& model_root,
                                    const std::string& name);

// Saves `net` and `config` (format set to libtorch; the weights in half
// precision when config.weights_precision() is "fp16"), and `optimizer`'s
// state when given, as MODEL_ROOT/<name>/<version>/. The version is assembled
// in a hidden sibling directory and renamed into place, so readers never see
// half of it. Returns the new version's directory; ALREADY_EXISTS if it is
// taken.
absl::StatusOr<std::filesystem::path> WriteModelVersion(
    const std::filesystem::path& model_root, const std::string& name,
    int64_t version, UNet& net, ModelConfig config,
    const torch::optim::Optimizer* optimizer = nullptr);

}  // namespace unet

#endif  // MODEL_MODEL_WRITER_H_
