#ifndef MODEL_TRAINING_DATASET_H_
#define MODEL_TRAINING_DATASET_H_

// Labelled images for training: DIR/image/N.png with DIR/label/N.png.
//
// Labels follow the ISBI 2012 convention: 255 (non-zero) = cell interior,
// 0 = membrane. They become classes 0 = "cell" and 1 = "membrane", the
// class names written into model.json; the border weight map is computed
// once per label from its cells.

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/training/augment.h"

namespace unet {

inline constexpr int kCellClass = 0;
inline constexpr int kMembraneClass = 1;

// Reads every pair, sorted by N; `weights` holds each label's weight map.
absl::StatusOr<std::vector<Sample>> LoadLabelledImages(
    const std::filesystem::path& dir);

}  // namespace unet

#endif  // MODEL_TRAINING_DATASET_H_
