#include "server/image_decoder.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace unet {
namespace {

using segmentation::v1::Image;
using segmentation::v1::PixelType;
using segmentation::v1::RawImage;

constexpr int kMaxChannels = 4;

absl::Status CheckPixelCount(int64_t width, int64_t height,
                             int64_t max_pixels) {
  if (width * height > max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", width, "x", height, " = ", width * height,
                     " pixels; this server takes at most ", max_pixels));
  }
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> DecodeRaw(const RawImage& raw, int64_t max_pixels) {
  int depth = 0;
  switch (raw.pixel_type()) {
    case segmentation::v1::PIXEL_TYPE_UINT8:
      depth = CV_8U;
      break;
    case segmentation::v1::PIXEL_TYPE_UINT16:
      depth = CV_16U;
      break;
    case segmentation::v1::PIXEL_TYPE_FLOAT32:
      depth = CV_32F;
      break;
    default:
      return absl::InvalidArgumentError("raw image has no pixel_type");
  }
  if (raw.width() == 0 || raw.height() == 0) {
    return absl::InvalidArgumentError("raw image has zero width or height");
  }
  if (raw.channels() < 1 || raw.channels() > kMaxChannels) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image has ", raw.channels(),
                     " channels; expected 1 to ", kMaxChannels));
  }
  const int64_t width = raw.width(), height = raw.height();
  if (auto status = CheckPixelCount(width, height, max_pixels); !status.ok()) {
    return status;
  }
  const int type = CV_MAKETYPE(depth, static_cast<int>(raw.channels()));
  const int64_t expected = width * height * CV_ELEM_SIZE(type);
  if (static_cast<int64_t>(raw.data().size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image data has ", raw.data().size(), " bytes; a ",
                     width, "x", height, "x", raw.channels(),
                     " image of this pixel type has ", expected));
  }
  // Copy: the request's bytes do not outlive the RPC handler.
  return cv::Mat(static_cast<int>(height), static_cast<int>(width), type,
                 const_cast<char*>(raw.data().data()))
      .clone();
}

absl::StatusOr<cv::Mat> DecodeEncoded(const std::string& bytes,
                                      int64_t max_pixels) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty");
  cv::Mat decoded;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                         const_cast<char*>(bytes.data()));
    decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decode image: ", e.what()));
  }
  if (decoded.empty()) {
    return absl::InvalidArgumentError(
        "cannot decode image: not a format OpenCV reads, or corrupt");
  }
  if (auto status = CheckPixelCount(decoded.cols, decoded.rows, max_pixels);
      !status.ok()) {
    return status;
  }
  switch (decoded.depth()) {
    case CV_8U:
    case CV_16U:
    case CV_32F:
      break;
    case CV_64F:
      decoded.convertTo(decoded, CV_32F);
      break;
    default:
      return absl::InvalidArgumentError(
          "image has signed integer pixels; expected unsigned 8/16-bit or "
          "float");
  }
  // OpenCV decodes colour as BGR(A); models see RGB(A), as raw images give.
  if (decoded.channels() == 3)
    cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
  if (decoded.channels() == 4) {
    cv::cvtColor(decoded, decoded, cv::COLOR_BGRA2RGBA);
  }
  return decoded;
}

}  // namespace

absl::StatusOr<cv::Mat> DecodeImage(const Image& image, int64_t max_pixels) {
  switch (image.source_case()) {
    case Image::kEncoded:
      return DecodeEncoded(image.encoded(), max_pixels);
    case Image::kRaw:
      return DecodeRaw(image.raw(), max_pixels);
    default:
      return absl::InvalidArgumentError("request has no image");
  }
}

}  // namespace unet
