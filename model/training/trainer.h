#ifndef MODEL_TRAINING_TRAINER_H_
#define MODEL_TRAINING_TRAINER_H_

// Trains the seed U-Net as the paper does (augmented tiles, border-weighted
// cross-entropy, dropout at the end of the contracting path) and writes a
// model version every `checkpoint_every` steps and at the end.

#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace unet {

struct TrainerOptions {
  std::filesystem::path data;        // image/N.png and label/N.png
  std::filesystem::path model_root;  // versions go to model_root/name/
  std::string name = "unet";
  std::string device = "cpu";
  int steps = 1000;
  int checkpoint_every = 500;
  int width = 16;  // channels of the first block, doubled per level
  int tile = 572;  // input tile side (the paper's), rounded up to a valid one
  int validation_images = 4;       // the last N pairs are held out
  std::string optimizer = "adam";  // or "sgd" (momentum 0.99, the paper's)
  double learning_rate = 1e-3;
  double dropout = 0.5;
  int seed = 0;
};

// Runs the training; the CSV log goes to model_root/name/training_log.csv.
absl::Status Train(const TrainerOptions& options);

}  // namespace unet

#endif  // MODEL_TRAINING_TRAINER_H_
