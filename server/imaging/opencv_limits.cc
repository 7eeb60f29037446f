#include "server/imaging/opencv_limits.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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
  if (std::getenv(kRestartedVariable) != nullptr) {
    return absl::InternalError(
        "OPENCV_IO_MAX_IMAGE_* are not in the environment after a restart");
  }
  for (const auto& [name, value] : OpenCvLimitVariables(limits)) {
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
  }
  setenv(kRestartedVariable, "1", 1);
  execv("/proc/self/exe", argv);
  return absl::InternalError(
      absl::StrCat("cannot restart with OpenCV's limits: ", strerror(errno)));
}

}  // namespace unet
