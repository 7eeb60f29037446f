#ifndef MODEL_MODEL_REPOSITORY_H_
#define MODEL_MODEL_REPOSITORY_H_

// The on-disk layout shared by the trainer, the server and users:
//
//   MODEL_ROOT/<name>/<version>/model.pt     weights (format in model.json)
//   MODEL_ROOT/<name>/<version>/model.json   metadata, see model_config.h
//
// <version> is a positive integer. A version exists only once its model.json
// is there; writers build it elsewhere on the same file system and rename the
// directory into place, so readers never see half a version.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace unet {

inline constexpr char kWeightsFile[] = "model.pt";
inline constexpr char kConfigFile[] = "model.json";

struct ModelVersionPath {
  std::string name;
  int64_t version = 0;
  std::filesystem::path dir;
};

// Lists the versions under `model_root`, sorted by name then version.
// Directories that are not `<name>/<positive integer>/` with a model.json are
// skipped. Fails (UNAVAILABLE) when the root cannot be read, so that callers
// can tell "no versions" from "mount not there".
absl::StatusOr<std::vector<ModelVersionPath>> ScanModelRoot(
    const std::filesystem::path& model_root);

// Parses a version directory name; returns 0 when it is not one.
int64_t ParseVersion(const std::string& dir_name);

}  // namespace unet

#endif  // MODEL_MODEL_REPOSITORY_H_
