// unet_convert: writes a LibTorch version again as a new version, with its
// weights stored in another precision (fp16 halves the bytes), and when
// --data is given scores the result as the server would and records that in
// its model.json.
//
//   build/bin/unet_convert --version_dir /tmp/wide/unet/1 \
//       --model_root model/gpu_repository --weights_precision fp16 \
//       --data tests/data/isbi_validation

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_repository.h"
#include "model/model_writer.h"
#include "model/training/dataset.h"
#include "model/training/validation.h"
#include "server/engine/torch_engine.h"

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
  RETURN_IF_ERROR(LoadWeights(net, in / kWeightsFile,
                              config.weights_precision() == "fp16"));
  config.set_weights_precision(absl::GetFlag(FLAGS_weights_precision));
  const std::filesystem::path root = absl::GetFlag(FLAGS_model_root);
  const std::string name = absl::GetFlag(FLAGS_name);
  std::filesystem::create_directories(root);
  ASSIGN_OR_RETURN(const int64_t version, NextVersion(root, name));
  ASSIGN_OR_RETURN(std::filesystem::path out,
                   WriteModelVersion(root, name, version, net, config));
  if (!absl::GetFlag(FLAGS_data).empty()) {
    // Score what was written, as the server will load it, and record that.
    ASSIGN_OR_RETURN(std::unique_ptr<InferenceEngine> engine,
                     LoadTorchEngine(out, config, EngineOptions()));
    ASSIGN_OR_RETURN(const std::vector<Sample> samples,
                     LoadLabelledImages(absl::GetFlag(FLAGS_data)));
    ASSIGN_OR_RETURN(
        const auto metrics,
        ScoreAsServed(samples, config, [&](const FloatTensor& input) {
          return engine->Forward(input);
        }));
    engine.reset();
    auto& recorded = *config.mutable_training()->mutable_metrics();
    recorded.clear();
    recorded.insert(metrics.begin(), metrics.end());
    std::filesystem::remove_all(out);
    ASSIGN_OR_RETURN(out, WriteModelVersion(root, name, version, net, config));
  }
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
