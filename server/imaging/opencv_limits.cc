#include "server/imaging/opencv_limits.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace unet {
namespace {

// Set on the restart, so that a failure to take the limits cannot loop.
constexpr char kRestartedVariable[] = "UNET_OPENCV_LIMITS_RESTARTED";

}  // namespace

std::vector<std::pair<std::string, std::string>> OpenCvLimitVariables(
    const DecodeLimits& limits) {
  return {{"OPENCV_IO_MAX_IMAGE_PIXELS", absl::StrCat(limits.max_pixels)},
          {"OPENCV_IO_MAX_IMAGE_WIDTH", absl::StrCat(limits.max_side)},
          {"OPENCV_IO_MAX_IMAGE_HEIGHT", absl::StrCat(limits.max_side)}};
}

bool OpenCvLimitsInForce(const DecodeLimits& limits) {
  for (const auto& [name, value] : OpenCvLimitVariables(limits)) {
    const char* current = std::getenv(name.c_str());
    if (current == nullptr || value != current) return false;
  }
  return true;
}

absl::Status EnforceOpenCvLimits(const DecodeLimits& limits, char** argv) {
  if (OpenCvLimitsInForce(limits)) return absl::OkStatus();
  // The guard names the limits, so that one inherited from a process with
  // other limits does not stop this one from restarting.
  const std::string guard =
      absl::StrCat(limits.max_pixels, ",", limits.max_side);
  const char* restarted = std::getenv(kRestartedVariable);
  if (restarted != nullptr && guard == restarted) {
    return absl::InternalError(
        "OPENCV_IO_MAX_IMAGE_* are not in the environment after a restart");
  }
  for (const auto& [name, value] : OpenCvLimitVariables(limits)) {
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
  }
  setenv(kRestartedVariable, guard.c_str(), 1);
  // The resolved path, not /proc/self/exe itself, so that ps and top still
  // show the program's name rather than "exe".
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  execv(error ? "/proc/self/exe" : self.c_str(), argv);
  return absl::InternalError(
      absl::StrCat("cannot restart with OpenCV's limits: ", strerror(errno)));
}

}  // namespace unet
