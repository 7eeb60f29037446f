#include "model/model_repository.h"

#include <algorithm>
#include <system_error>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace unet {
namespace fs = std::filesystem;

int64_t ParseVersion(const std::string& dir_name) {
  int64_t version = 0;
  if (dir_name.empty() || dir_name[0] == '0' ||
      !std::all_of(dir_name.begin(), dir_name.end(), ::isdigit) ||
      !absl::SimpleAtoi(dir_name, &version)) {
    return 0;
  }
  return version;
}

absl::StatusOr<std::vector<ModelVersionPath>> ScanModelRoot(
    const fs::path& model_root) {
  std::error_code error;
  fs::directory_iterator names(model_root, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot read model root ", model_root.string(), ": ", error.message()));
  }
  std::vector<ModelVersionPath> found;
  for (const fs::directory_entry& name_dir : names) {
    const std::string name = name_dir.path().filename().string();
    if (name.empty() || name[0] == '.' || !name_dir.is_directory(error)) {
      continue;
    }
    fs::directory_iterator versions(name_dir.path(), error);
    if (error) continue;  // a model being removed; the others stay visible
    for (const fs::directory_entry& version_dir : versions) {
      const int64_t version =
          ParseVersion(version_dir.path().filename().string());
      if (version == 0 ||
          !fs::is_regular_file(version_dir.path() / kConfigFile, error)) {
        continue;
      }
      found.push_back({name, version, version_dir.path()});
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::tie(a.name, a.version) < std::tie(b.name, b.version);
  });
  return found;
}

}  // namespace unet
