#ifndef MODEL_TRAINING_SCORE_VERSION_H_
#define MODEL_TRAINING_SCORE_VERSION_H_

// Scores a written model version as the server serves it: loaded by the
// server's engine, segmented through ScoreAsServed. Shared by unet_evaluate
// and unet_convert.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/training/augment.h"
#include "server/engine/torch_engine.h"

namespace unet {

// The validation metrics of the version in `version_dir` (described by
// `config`) on `samples`, on the engine `options` describe; with
// `test_time_augmentation`, of the soft-max averaged over 8 views.
absl::StatusOr<std::map<std::string, double>> ScoreVersion(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const std::vector<Sample>& samples, const EngineOptions& options,
    bool test_time_augmentation = false);

}  // namespace unet

#endif  // MODEL_TRAINING_SCORE_VERSION_H_
