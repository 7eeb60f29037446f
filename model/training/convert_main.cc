// unet_convert: writes a LibTorch version again as a new version, with its
// weights stored in another precision (fp16 halves the bytes), and when
// --data is given scores the result as the server would and records that in
// its model.json.
//
//   build/bin/unet_convert --version_dir /tmp/wide/unet/1 \
//       --model_root model/gpu_repository --weights_precision fp16 \
//       --data tests/data/isbi_validation

#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_repository.h"
#include "model/model_writer.h"
#include "model/training/dataset.h"
#include "model/training/score_version.h"

ABSL_FLAG(std::string, version_dir, "", "the LibTorch version to convert");
ABSL_FLAG(std::string, model_root, "", "model repository to write into");
ABSL_FLAG(std::string, name, "unet", "model name to write as");
ABSL_FLAG(std::string, weights_precision, "fp16", "fp32 or fp16");
ABSL_FLAG(std::string, data, "",
          "labelled images to score the result on (optional)");

namespace unet {
namespace {

absl::Status Run() {
  const std::filesystem::path in = absl::GetFlag(FLAGS_version_dir);
  ASSIGN_OR_RETURN(ModelConfig config, ReadModelConfig(in / kConfigFile));
  if (config.format() != kFormatLibTorch) {
    return absl::InvalidArgumentError("only libtorch versions convert");
  }
  UNet net(OptionsFromArchitecture(config.architecture()));
  RETURN_IF_ERROR(LoadWeights(net, in / kWeightsFile));
  config.set_weights_precision(absl::GetFlag(FLAGS_weights_precision));
  if (!absl::GetFlag(FLAGS_data).empty()) {
    // Score the converted weights as the server will load them, from a
    // scratch copy, so that the repository only ever sees the final version.
    std::error_code no_tmp;
    std::filesystem::path scratch =
        std::filesystem::temp_directory_path(no_tmp);
    if (no_tmp) scratch = "/tmp";
    scratch /= absl::StrCat("unet_convert.", ::getpid());
    ASSIGN_OR_RETURN(const std::filesystem::path trial,
                     WriteModelVersion(scratch, "trial", 1, net, config));
    absl::StatusOr<std::vector<Sample>> samples =
        LoadLabelledImages(absl::GetFlag(FLAGS_data));
    absl::StatusOr<std::map<std::string, double>> metrics =
        samples.ok() ? ScoreVersion(trial, config, *samples, EngineOptions())
                     : samples.status();
    std::error_code ignored;
    std::filesystem::remove_all(scratch, ignored);
    if (!metrics.ok()) return metrics.status();
    auto& recorded = *config.mutable_training()->mutable_metrics();
    recorded.clear();
    recorded.insert(metrics->begin(), metrics->end());
  }
  const std::filesystem::path root = absl::GetFlag(FLAGS_model_root);
  const std::string name = absl::GetFlag(FLAGS_name);
  std::error_code error;
  std::filesystem::create_directories(root, error);
  ASSIGN_OR_RETURN(const int64_t version, NextVersion(root, name));
  ASSIGN_OR_RETURN(const std::filesystem::path out,
                   WriteModelVersion(root, name, version, net, config));
  std::cout << "wrote " << out.string() << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace unet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a version again with its weights in another precision.\n"
      "usage: unet_convert --version_dir DIR --model_root DIR "
      "[--weights_precision fp16] [--data DIR]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_version_dir).empty() ||
      absl::GetFlag(FLAGS_model_root).empty()) {
    std::cerr << "unet_convert: need --version_dir and --model_root\n";
    return 2;
  }
  const absl::Status status = unet::Run();
  if (!status.ok()) {
    std::cerr << "unet_convert: " << status << "\n";
    return 1;
  }
  return 0;
}
