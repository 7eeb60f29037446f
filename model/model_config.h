#ifndef MODEL_MODEL_CONFIG_H_
#define MODEL_MODEL_CONFIG_H_

// Reading and writing `model.json`, the metadata of one model version (schema:
// proto/segmentation/v1/model_config.proto).

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "segmentation/v1/model_config.pb.h"

namespace unet {

using segmentation::v1::ModelConfig;

inline constexpr char kFormatLibTorch[] = "libtorch";
inline constexpr char kFormatTorchScript[] = "torchscript";

// Parses and validates a model.json document. Fills `valid_input_sizes` from
// the architecture when absent; rejects it when it disagrees.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json);

// Reads and parses `path`.
absl::StatusOr<ModelConfig> ReadModelConfig(const std::filesystem::path& path);

// Checks that the config describes a model the server can run.
absl::Status ValidateModelConfig(const ModelConfig& config);

// Returns the config as indented JSON with the schema's field names.
std::string ModelConfigToJson(const ModelConfig& config);

// Returns a config for a freshly built U-Net: [0, 1] inputs, no training.
ModelConfig DefaultModelConfig(int input_channels, int num_classes,
                               const std::vector<int>& channels);

}  // namespace unet

#endif  // MODEL_MODEL_CONFIG_H_
