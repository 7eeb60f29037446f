#include "model/training/score_version.h"

#include "common/status_macros.h"
#include "model/training/validation.h"

namespace unet {

absl::StatusOr<std::map<std::string, double>> ScoreVersion(
    const std::filesystem::path& version_dir, const ModelConfig& config,
    const std::vector<Sample>& samples, const EngineOptions& options,
    bool test_time_augmentation) {
  ASSIGN_OR_RETURN(std::unique_ptr<InferenceEngine> engine,
                   LoadTorchEngine(version_dir, config, options));
  return ScoreAsServed(
      samples, config,
      [&](const FloatTensor& input) { return engine->Forward(input); },
      test_time_augmentation);
}

}  // namespace unet
