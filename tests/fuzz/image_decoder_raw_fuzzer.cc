// Builds a RawImage from the bytes, headers biased toward the edges (zero,
// the limits, values that overflow 32-bit products), and decodes it; on
// success also prepares it as the network's input, as the server would.

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "model/imaging/preprocess.h"
#include "model/model_config.h"
#include "segmentation/v1/segmentation.pb.h"
#include "server/imaging/image_decoder.h"
#include "tests/fuzz/decode_contract.h"

namespace {

using segmentation::v1::RawImage;
using unet_fuzz::Fail;

// The server's own limits: the raw path does not depend on OpenCV's.
constexpr unet::DecodeLimits kLimits;

// Padded inputs up to this many pixels (128x128) are prepared: bigger ones
// cover nothing new and their allocations slow the fuzzer down tenfold.
constexpr int64_t kMaxPreparedPixels = int64_t{1} << 14;

// Raw data is made to fit the header when asked, up to this many bytes.
constexpr uint64_t kMaxFittedBytes = uint64_t{1} << 18;

uint32_t ConsumeHeaderValue(FuzzedDataProvider& fdp, uint32_t small_max) {
  static constexpr uint32_t kEdges[] = {
      0,          1,          2,          3,          4,
      5,          4095,       4096,       4097,       8192,
      65535,      65536,      65537,      0x7FFFFFFF, 0x80000000,
      0x80000001, 0xFFFFFFFE, 0xFFFFFFFF, 0x40000000, 0x10000001};
  switch (fdp.ConsumeIntegralInRange(0, 3)) {
    case 0:
      return fdp.PickValueInArray(kEdges);
    case 1:
      return fdp.ConsumeIntegral<uint32_t>();
    default:
      return fdp.ConsumeIntegralInRange<uint32_t>(0, small_max);
  }
}

size_t ElementSize(int32_t pixel_type) {
  switch (pixel_type) {
    case segmentation::v1::PIXEL_TYPE_UINT16:
      return 2;
    case segmentation::v1::PIXEL_TYPE_FLOAT32:
      return 4;
    default:
      return 1;
  }
}

// A decoded raw image is the request's pixels, unchanged.
void CheckSameAsRequest(const cv::Mat& mat, const RawImage& raw) {
  const absl::Status ok;
  if (static_cast<uint32_t>(mat.cols) != raw.width() ||
      static_cast<uint32_t>(mat.rows) != raw.height() ||
      static_cast<uint32_t>(mat.channels()) != raw.channels()) {
    Fail("raw image decoded to another shape", ok);
  }
  if (mat.elemSize1() != ElementSize(raw.pixel_type())) {
    Fail("raw image decoded to another pixel type", ok);
  }
  const size_t bytes = mat.total() * mat.elemSize();
  if (!mat.isContinuous() || bytes != raw.data().size() ||
      std::memcmp(mat.data, raw.data().data(), bytes) != 0) {
    Fail("raw image decoded to other pixels", ok);
  }
}

bool SameValue(float got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == static_cast<float>(want);
  return std::abs(got - want) <= 1e-5 * std::max(1.0, std::abs(want));
}

void CheckPrepared(const cv::Mat& image, bool retain_dim) {
  unet::ModelConfig config =
      unet::DefaultModelConfig(image.channels(), 2, {2, 4});
  config.mutable_architecture()->set_retain_dim(retain_dim);
  const unet::InputSize size =
      unet::PaddedInputSize(image.rows, image.cols, config);
  if (size.height < image.rows || size.width < image.cols) {
    Fail("padded input smaller than the image", absl::OkStatus());
  }
  if (size.pixels() > kMaxPreparedPixels) return;
  const absl::StatusOr<unet::PreparedImage> prepared =
      unet::Preprocess(image, config);
  if (!prepared.ok()) Fail("Preprocess failed", prepared.status());
  const unet::PreparedImage& p = *prepared;
  const size_t plane = static_cast<size_t>(p.padded_height) * p.padded_width;
  if (p.padded_height != size.height || p.padded_width != size.width ||
      p.channels != image.channels() || p.chw.size() != plane * p.channels ||
      p.pad_top < 0 || p.pad_left < 0 ||
      p.pad_top + image.rows > p.padded_height ||
      p.pad_left + image.cols > p.padded_width) {
    Fail("prepared image has the wrong geometry", absl::OkStatus());
  }
  // The image's first pixel sits at the pad, scaled to [0, 1] (mean 0, std
  // 1).
  const double unit = image.depth() == CV_8U    ? 1.0 / 255
                      : image.depth() == CV_16U ? 1.0 / 65535
                                                : 1.0;
  cv::Mat first;
  image(cv::Rect(0, 0, 1, 1)).convertTo(first, CV_64F);
  for (int c = 0; c < p.channels; ++c) {
    const float got =
        p.chw[c * plane + static_cast<size_t>(p.pad_top) * p.padded_width +
              p.pad_left];
    if (!SameValue(got, first.ptr<double>(0)[c] * unit)) {
      Fail("prepared pixel differs from the image's", absl::OkStatus());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  segmentation::v1::Image image;
  RawImage& raw = *image.mutable_raw();
  raw.set_width(ConsumeHeaderValue(fdp, 300));
  raw.set_height(ConsumeHeaderValue(fdp, 300));
  raw.set_channels(ConsumeHeaderValue(fdp, 6));
  // Any int32, as the wire allows: proto3 enums are open.
  const int32_t pixel_type = fdp.ConsumeBool()
                                 ? fdp.ConsumeIntegralInRange<int32_t>(0, 3)
                                 : fdp.ConsumeIntegral<int32_t>();
  raw.set_pixel_type(static_cast<segmentation::v1::PixelType>(pixel_type));
  const bool fit = fdp.ConsumeBool();
  const bool retain_dim = fdp.ConsumeBool();
  std::string pixels = fdp.ConsumeRemainingBytesAsString();
  // Random data almost never matches its header; often make it fit so that
  // the decode succeeds.
  const uint64_t expected = uint64_t{raw.width()} * raw.height() *
                            raw.channels() * ElementSize(pixel_type);
  if (fit && expected <= kMaxFittedBytes) {
    pixels.resize(expected, '\x7f');
  }
  raw.set_data(std::move(pixels));

  const absl::StatusOr<cv::Mat> decoded = unet::DecodeImage(image, kLimits);
  unet_fuzz::CheckDecodeContract(decoded, kLimits);
  if (decoded.ok()) {
    CheckSameAsRequest(*decoded, image.raw());
    CheckPrepared(*decoded, retain_dim);
  }
  return 0;
}
