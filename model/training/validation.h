#ifndef MODEL_TRAINING_VALIDATION_H_
#define MODEL_TRAINING_VALIDATION_H_

// Scores a model on labelled images exactly as the server would segment them
// (same preprocessing, forward pass, crop and soft-max), so that the metrics
// written into model.json are those of the served masks.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/training/augment.h"
#include "server/engine/inference_engine.h"

namespace unet {

// Runs the network on one (1, C, H, W) input; returns its logits.
using ForwardPass =
    std::function<absl::StatusOr<FloatTensor>(const FloatTensor& input)>;

// The metrics of SegmentationScorer over `samples`. With
// `test_time_augmentation`, each image's soft-max is averaged over its 8
// views (model/imaging/test_time_views.h), as the server averages them.
absl::StatusOr<std::map<std::string, double>> ScoreAsServed(
    const std::vector<Sample>& samples, const ModelConfig& config,
    const ForwardPass& forward, bool test_time_augmentation = false);

}  // namespace unet

#endif  // MODEL_TRAINING_VALIDATION_H_
