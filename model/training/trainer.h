#ifndef MODEL_TRAINING_TRAINER_H_
#define MODEL_TRAINING_TRAINER_H_

// Trains the seed U-Net as the paper does (augmented tiles, border-weighted
// cross-entropy, dropout at the end of the contracting path) and writes a
// model version every `checkpoint_every` steps and at the end.

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace unet {

struct TrainerOptions {
  std::filesystem::path data;        // image/N.png and label/N.png
  std::filesystem::path model_root;  // versions go to model_root/name/
  std::string name = "unet";
  std::string device = "cpu";
  int steps = 1000;  // the step to reach, counted from the first run
  int checkpoint_every = 500;
  int width = 16;  // channels of the first block, doubled per level
  int tile = 572;  // input tile side (the paper's), rounded up to a valid one
  int validation_images = 4;       // the last N pairs are held out
  std::string optimizer = "adam";  // or "sgd" (momentum 0.99, the paper's)
  double learning_rate = 1e-3;
  double dropout = 0.5;
  int seed = 0;
  // Continue from the newest version of `name`: its architecture,
  // normalisation, weights, optimizer state and step. Each step draws its
  // randomness from (seed, step), so a resumed run repeats the steps that an
  // uninterrupted one would have taken.
  bool resume = false;
  // Stop after the step that passes this much training time, writing a
  // version there (zero: no limit).
  absl::Duration time_limit = absl::ZeroDuration();
  bool progress_bar = false;  // redraw a bar in place (on a terminal)
};

// Runs the training. Beside the versions, in model_root/name/, it appends to
// training_log.csv (loss per step, validation metrics per checkpoint) and
// draws training_curves.png from that log at the end.
absl::Status Train(const TrainerOptions& options);

}  // namespace unet

#endif  // MODEL_TRAINING_TRAINER_H_
