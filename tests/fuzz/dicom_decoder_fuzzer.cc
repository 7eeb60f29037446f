// Decodes the bytes as a DICOM Part 10 file (server/imaging/dicom_decoder)
// under every mapping a model may ask for, and checks what comes back:
// frames within the limits, CV_32F intensities in [0, 1], never a crash.
// The seeds (corpus/dicom_decoder) cover each supported transfer syntax.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "segmentation/v1/model_config.pb.h"
#include "server/imaging/dicom_decoder.h"

namespace {

// Small limits keep each input quick; the checks are the same.
constexpr unet::DecodeLimits kLimits{int64_t{1} << 20, 4096};

void Fail(const char* what) {
  std::fprintf(stderr, "contract broken: %s\n", what);
  std::abort();
}

segmentation::v1::DicomInput Mapping(uint8_t choice) {
  segmentation::v1::DicomInput mapping;
  switch (choice % 4) {
    case 1:
      mapping.mutable_window()->set_center(40);
      mapping.mutable_window()->set_width(400);
      break;
    case 2:
      mapping.mutable_range()->set_min(-1024);
      mapping.mutable_range()->set_max(3071);
      break;
    case 3:
      mapping.set_min_max(true);
      break;
    default:
      break;  // as stored
  }
  return mapping;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const uint8_t choice = size > 0 ? data[size - 1] : 0;
  const auto image = unet::DecodeDicom(bytes, kLimits, Mapping(choice));
  if (!image.ok()) {
    if (image.status().message().empty()) Fail("a refusal without a reason");
    return 0;
  }
  int64_t pixels = 0;
  for (const cv::Mat& frame : image->frames) {
    if (frame.type() != CV_32F || frame.empty()) Fail("frame type");
    if (frame.rows > kLimits.max_side || frame.cols > kLimits.max_side) {
      Fail("frame side beyond the limit");
    }
    pixels += int64_t{frame.rows} * frame.cols;
    for (int y = 0; y < frame.rows; ++y) {
      const float* row = frame.ptr<float>(y);
      for (int x = 0; x < frame.cols; ++x) {
        if (!(row[x] >= 0.0f && row[x] <= 1.0f)) Fail("intensity not in [0, 1]");
      }
    }
  }
  if (pixels > kLimits.max_pixels) Fail("frames beyond the pixel limit");
  if (image->source == nullptr) Fail("no source header");
  return 0;
}
