#include "model/model_writer.h"

#include <unistd.h>

#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_repository.h"

namespace unet {
namespace fs = std::filesystem;
namespace {

// A copy of `net` with its parameters in half precision, for storage; `net`
// itself is left as it is.
UNet HalfCopy(UNet& net, const ModelConfig& config) {
  torch::NoGradGuard no_grad;
  UNet half(OptionsFromArchitecture(config.architecture()));
  half->to(torch::kHalf);
  const auto from = net->named_parameters();
  for (auto& to : half->named_parameters()) {
    to.value().copy_(from[to.key()]);
  }
  return half;
}

}  // namespace

absl::StatusOr<int64_t> NewestVersion(const fs::path& model_root,
                                      const std::string& name) {
  ASSIGN_OR_RETURN(const std::vector<ModelVersionPath> versions,
                   ScanModelRoot(model_root));
  int64_t newest = 0;
  for (const auto& v : versions) {
    if (v.name == name) newest = std::max(newest, v.version);
  }
  return newest;
}

absl::StatusOr<int64_t> NextVersion(const fs::path& model_root,
                                    const std::string& name) {
  ASSIGN_OR_RETURN(const int64_t newest, NewestVersion(model_root, name));
  return newest + 1;
}

absl::StatusOr<fs::path> WriteModelVersion(
    const fs::path& model_root, const std::string& name, int64_t version,
    UNet& net, ModelConfig config, const torch::optim::Optimizer* optimizer) {
  config.set_format(kFormatLibTorch);
  RETURN_IF_ERROR(ValidateModelConfig(config));
  const fs::path model_dir = model_root / name;
  const fs::path final_dir = model_dir / std::to_string(version);
  const fs::path staging_dir =
      model_dir / absl::StrCat(".staging-", version, "-", ::getpid());
  std::error_code error;
  fs::create_directories(staging_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat(
        "cannot create ", staging_dir.string(), ": ", error.message()));
  }
  try {
    if (config.weights_precision() == "fp16") {
      torch::save(HalfCopy(net, config), (staging_dir / kWeightsFile).string());
    } else {
      torch::save(net, (staging_dir / kWeightsFile).string());
    }
    if (optimizer != nullptr) {
      torch::save(*optimizer, (staging_dir / kOptimizerFile).string());
    }
  } catch (const c10::Error& e) {
    fs::remove_all(staging_dir, error);
    return absl::InternalError(
        absl::StrCat("cannot save weights: ", e.what_without_backtrace()));
  }
  {
    std::ofstream json(staging_dir / kConfigFile);
    json << ModelConfigToJson(config);
    if (!json.flush()) {
      fs::remove_all(staging_dir, error);
      return absl::InternalError("cannot write model.json");
    }
  }
  if (fs::exists(final_dir, error)) {
    fs::remove_all(staging_dir, error);
    return absl::AlreadyExistsError(
        absl::StrCat(final_dir.string(), " already exists"));
  }
  fs::rename(staging_dir, final_dir, error);
  if (error) {
    const std::string reason = error.message();
    fs::remove_all(staging_dir, error);
    return absl::InternalError(
        absl::StrCat("cannot rename into ", final_dir.string(), ": ", reason));
  }
  return final_dir;
}

}  // namespace unet
