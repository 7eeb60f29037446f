#ifndef SERVER_IMAGING_OPENCV_LIMITS_H_
#define SERVER_IMAGING_OPENCV_LIMITS_H_

// Makes OpenCV refuse oversized images itself, from the header, before it
// allocates their pixels.
//
// OpenCV 4.6 reads OPENCV_IO_MAX_IMAGE_PIXELS, _WIDTH and _HEIGHT into
// namespace-scope constants of libopencv_imgcodecs (loadsave.cpp), that is
// while the library is loaded, before main() runs; setenv() in main() is too
// late. A process that must enforce limits therefore starts again with them
// in its environment.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/imaging/image_decoder.h"

namespace unet {

// Returns the environment variables, and their values, that make OpenCV
// refuse images beyond `limits`.
std::vector<std::pair<std::string, std::string>> OpenCvLimitVariables(
    const DecodeLimits& limits);

// Returns whether this process started with exactly those values.
bool OpenCvLimitsInForce(const DecodeLimits& limits);

// Returns when OpenCV's limits are in force. Otherwise sets them and
// re-executes this program (the file /proc/self/exe names) with `argv`,
// which does not return; returns INTERNAL if that fails, or if the limits
// are still not in force after a restart (something strips the
// environment).
absl::Status EnforceOpenCvLimits(const DecodeLimits& limits, char** argv);

}  // namespace unet

#endif  // SERVER_IMAGING_OPENCV_LIMITS_H_
