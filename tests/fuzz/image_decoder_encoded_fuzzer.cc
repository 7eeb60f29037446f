// Feeds arbitrary bytes to the server's decoder as Image.encoded: the
// signature sniffing, the grayscale PNG fast path (checked against OpenCV),
// then OpenCV's PNG, TIFF, JPEG and BMP readers under the limits the server
// runs with.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "segmentation/v1/segmentation.pb.h"
#include "server/imaging/gray_png_decoder.h"
#include "server/imaging/image_decoder.h"
#include "server/imaging/opencv_limits.h"
#include "server/imaging/png_chunks.h"
#include "tests/fuzz/decode_contract.h"

namespace {

// Far smaller than the server's default: a few hundred bytes can declare an
// image of millions of pixels, and decoding those under ASan cut the rate to
// a tenth. The code paths are the same; what matters is that the limits
// hold.
constexpr unet::DecodeLimits kLimits{/*max_pixels=*/int64_t{1} << 16,
                                     /*max_side=*/1024};

// The codecs are not instrumented (see CMakeLists.txt), so coverage alone
// cannot tell a PNG that decodes from one that libpng rejects. These counters,
// which libFuzzer reads as extra coverage, tell it the outcomes apart: the
// reason of a refusal, or the format, type and rough size of a decoded image.
__attribute__((used, section("__libfuzzer_extra_counters")))
uint8_t outcome_counters[4096];

int Log2(int n) { return n > 0 ? 31 - __builtin_clz(n) : -1; }

void CountOutcome(const std::string& bytes,
                  const absl::StatusOr<cv::Mat>& decoded) {
  std::string outcome;
  if (decoded.ok()) {
    outcome = absl::StrCat(unet::ImageFormatName(unet::SniffImageFormat(bytes)),
                           ":", decoded->type(), ":", Log2(decoded->rows), "x",
                           Log2(decoded->cols));
  } else {
    // Without the numbers: every size in "image is 0x7" is not a new reason.
    for (char c : decoded.status().message()) {
      if (!absl::ascii_isdigit(c)) outcome += c;
    }
  }
  // std::hash, unlike absl::Hash, is the same in every process (-fork=N).
  outcome_counters[std::hash<std::string>{}(outcome) %
                   sizeof(outcome_counters)]++;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // OpenCV reads its limits while loading: restart with them in the
  // environment, as the server does, or a header claiming a huge image would
  // make it allocate before our own check.
  const absl::Status status = unet::EnforceOpenCvLimits(kLimits, *argv);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    std::abort();
  }
  return 0;
}

namespace {

// `bytes` with the CRC of every whole chunk after a PNG signature made
// right: mutated image data then reaches both decoders' inflate and
// unfiltering instead of failing the CRC check of both.
std::string WithChunkCrcsRight(std::string bytes) {
  if (!absl::StartsWith(bytes, unet::kPngSignature)) return bytes;
  absl::string_view rest = absl::string_view(bytes).substr(8);
  while (const std::optional<unet::PngChunk> chunk = unet::NextPngChunk(rest)) {
    const uint32_t crc = unet::PngChunkCrc(  // type and data, side by side
        absl::string_view(chunk->type.data(), 4 + chunk->data.size()));
    // The CRC follows the data.
    const size_t at = chunk->data.data() + chunk->data.size() - bytes.data();
    for (int i = 0; i < 4; ++i) {
      bytes[at + i] = static_cast<char>(crc >> (24 - 8 * i));
    }
  }
  return bytes;
}

// Whatever the grayscale PNG fast path decodes, OpenCV must decode to the
// same pixels: the path may only decline, never disagree.
void CheckGrayPngAgreesWithOpenCv(const std::string& bytes) {
  const std::optional<cv::Mat> fast = unet::DecodeGrayPng(bytes, kLimits);
  if (!fast) return;
  const cv::Mat reference =
      cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U,
                           const_cast<char*>(bytes.data())),
                   cv::IMREAD_UNCHANGED);
  if (reference.type() != fast->type() || reference.size() != fast->size() ||
      cv::norm(reference, *fast, cv::NORM_INF) != 0) {
    std::fprintf(stderr, "the grayscale PNG path disagrees with OpenCV\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  segmentation::v1::Image image;
  image.set_encoded(std::string(reinterpret_cast<const char*>(data), size));
  const absl::StatusOr<cv::Mat> decoded = unet::DecodeImage(image, kLimits);
  unet_fuzz::CheckDecodeContract(decoded, kLimits);
  CountOutcome(image.encoded(), decoded);
  CheckGrayPngAgreesWithOpenCv(WithChunkCrcsRight(image.encoded()));
  return 0;
}
