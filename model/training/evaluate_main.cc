// unet_evaluate: scores one model version on labelled images as the server
// segments them (the trainer's validation metrics), on any device.
//
//   build/bin/unet_evaluate --version_dir model/repository/unet/3 \
//       --data tests/data/isbi_validation

#include <chrono>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "model/model_repository.h"
#include "model/training/dataset.h"
#include "model/training/score_version.h"

ABSL_FLAG(std::string, version_dir, "", "a model version directory");
ABSL_FLAG(std::string, data, "", "folder with image/N.png and label/N.png");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda[:N]");
ABSL_FLAG(bool, test_time_augmentation, false,
          "average the soft-max over the 8 flips and quarter turns of each "
          "image, as the server does when asked");

namespace unet {
namespace {

absl::Status Run() {
  const std::filesystem::path dir = absl::GetFlag(FLAGS_version_dir);
  absl::StatusOr<ModelConfig> config = ReadModelConfig(dir / kConfigFile);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<Sample>> samples =
      LoadLabelledImages(absl::GetFlag(FLAGS_data));
  if (!samples.ok()) return samples.status();
  EngineOptions options;
  options.device = absl::GetFlag(FLAGS_device);
  const auto start = std::chrono::steady_clock::now();
  const auto metrics =
      ScoreVersion(dir, *config, *samples, options,
                   absl::GetFlag(FLAGS_test_time_augmentation));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!metrics.ok()) return metrics.status();
  std::cout << absl::StrFormat(
      "%s on %d images%s (%.1f s, loading included):\n", dir.string(),
      samples->size(),
      absl::GetFlag(FLAGS_test_time_augmentation) ? ", 8 views averaged" : "",
      seconds);
  for (const auto& [name, value] : *metrics) {
    std::cout << absl::StrFormat("  %-24s %.4f\n", name, value);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace unet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Scores a model version on labelled images.\n"
      "usage: unet_evaluate --version_dir DIR --data DIR [--device cpu]\n"
      "         [--test_time_augmentation]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_version_dir).empty() ||
      absl::GetFlag(FLAGS_data).empty()) {
    std::cerr << "unet_evaluate: need --version_dir and --data\n";
    return 2;
  }
  const absl::Status status = unet::Run();
  if (!status.ok()) {
    std::cerr << "unet_evaluate: " << status << "\n";
    return 1;
  }
  return 0;
}
