// unet_train: trains the seed U-Net and writes model versions that a running
// segmentation_server picks up.
//
//   build/bin/unet_train --data ../shared/data/isbi2012-em/train \
//       --model_root model/repository --name unet --steps 2000 --width 16
//   build/bin/unet_train ... --steps 4000 --resume   # on to step 4000

#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/machine_memory.h"
#include "model/training/trainer.h"

ABSL_FLAG(std::string, data, "", "folder with image/N.png and label/N.png");
ABSL_FLAG(std::string, model_root, "", "model repository to write into");
ABSL_FLAG(std::string, name, "unet", "model name");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda[:N]");
ABSL_FLAG(int, steps, 1000, "training steps (one augmented tile each)");
ABSL_FLAG(int, checkpoint_every, 500, "write a version every N steps");
ABSL_FLAG(int, width, 16, "channels of the first block (the paper: 64)");
ABSL_FLAG(int, tile, 572, "input tile side");
ABSL_FLAG(int, validation_images, 4, "last N labelled images held out");
ABSL_FLAG(std::string, optimizer, "adam", "adam or sgd (momentum 0.99)");
ABSL_FLAG(double, learning_rate, 1e-3, "learning rate");
ABSL_FLAG(double, dropout, 0.5, "dropout at the end of the contracting path");
ABSL_FLAG(int, seed, 0, "seed of weights, augmentation and tile choice");
ABSL_FLAG(double, time_limit_s, 0,
          "stop after the step that passes this many seconds of training, "
          "writing a version there (0: none)");
ABSL_FLAG(bool, resume, false,
          "continue from the newest version (weights, optimizer state, step) "
          "up to --steps");

int main(int argc, char** argv) {
  unet::TuneAllocator();  // 2.97 -> 3.66 img/s here (docs/performance.md)
  absl::SetProgramUsageMessage(
      "Trains the U-Net.\nusage: unet_train --data DIR --model_root DIR ...");
  absl::ParseCommandLine(argc, argv);
  unet::TrainerOptions options;
  options.data = absl::GetFlag(FLAGS_data);
  options.model_root = absl::GetFlag(FLAGS_model_root);
  options.name = absl::GetFlag(FLAGS_name);
  options.device = absl::GetFlag(FLAGS_device);
  options.steps = absl::GetFlag(FLAGS_steps);
  options.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  options.width = absl::GetFlag(FLAGS_width);
  options.tile = absl::GetFlag(FLAGS_tile);
  options.validation_images = absl::GetFlag(FLAGS_validation_images);
  options.optimizer = absl::GetFlag(FLAGS_optimizer);
  options.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  options.dropout = absl::GetFlag(FLAGS_dropout);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.time_limit = absl::Seconds(absl::GetFlag(FLAGS_time_limit_s));
  options.progress_bar = ::isatty(STDOUT_FILENO);
  if (options.data.empty() || options.model_root.empty() || options.steps < 1 ||
      options.checkpoint_every < 1 || options.width < 1) {
    std::cerr << "unet_train: need --data, --model_root, and positive "
                 "--steps, --checkpoint_every, --width\n";
    return 2;
  }
  const absl::Status status = unet::Train(options);
  if (!status.ok()) {
    std::cerr << "unet_train: " << status << "\n";
    return 1;
  }
  return 0;
}
