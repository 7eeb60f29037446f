#ifndef TESTS_FUZZ_DECODE_CONTRACT_H_
#define TESTS_FUZZ_DECODE_CONTRACT_H_

// What every result of unet::DecodeImage must satisfy, whatever the bytes:
// the server hands an OK Mat straight to Preprocess and maps the codes to
// gRPC statuses, so anything else is a bug even when nothing crashes.

#include <cstdio>
#include <cstdlib>
#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "server/imaging/image_decoder.h"

namespace unet_fuzz {

[[noreturn]] inline void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "decode contract violated: %s (status: %s)\n", what,
               status.ToString().c_str());
  std::abort();
}

inline void CheckDecodeContract(const absl::StatusOr<cv::Mat>& decoded,
                                const unet::DecodeLimits& limits) {
  const absl::Status& status = decoded.status();
  switch (status.code()) {
    case absl::StatusCode::kOk:
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
      return;
    default:
      Fail("unexpected status code", status);
  }
  const cv::Mat& mat = *decoded;
  if (mat.empty() || mat.dims != 2) Fail("empty or not 2-D", status);
  if (mat.channels() < 1 || mat.channels() > 4) Fail("channels", status);
  if (mat.depth() != CV_8U && mat.depth() != CV_16U && mat.depth() != CV_32F) {
    Fail("depth", status);
  }
  if (mat.cols > limits.max_side || mat.rows > limits.max_side ||
      int64_t{mat.cols} * mat.rows > limits.max_pixels) {
    Fail("larger than the limits", status);
  }
}

}  // namespace unet_fuzz

#endif  // TESTS_FUZZ_DECODE_CONTRACT_H_
