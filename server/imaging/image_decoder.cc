#include "server/imaging/image_decoder.h"

#include <new>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/imaging/gray_png_decoder.h"
#include "server/imaging/png_chunks.h"

namespace unet {
namespace {

using segmentation::v1::Image;
using segmentation::v1::RawImage;

constexpr int kMaxChannels = 4;

// OpenCV reports a failed allocation as an exception of its own.
absl::Status FromCvException(const cv::Exception& e, absl::string_view doing) {
  if (e.code == cv::Error::StsNoMem) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: cannot ", doing));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cannot ", doing, ": ", e.err));
}

absl::Status CheckSize(int64_t width, int64_t height,
                       const DecodeLimits& limits) {
  if (width < 1 || height < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", width, "x", height, "; it has no pixels"));
  }
  // Sides first: once both are within max_side the product cannot overflow.
  if (width > limits.max_side || height > limits.max_side) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is ", width, "x", height, "; this server takes at most ",
        limits.max_side, " pixels per side"));
  }
  if (width * height > limits.max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", width, "x", height, " = ", width * height,
                     " pixels; this server takes at most ", limits.max_pixels));
  }
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> DecodeRaw(const RawImage& raw,
                                  const DecodeLimits& limits) {
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
      return absl::InvalidArgumentError(
          "raw image has no known pixel_type (UINT8, UINT16 or FLOAT32)");
  }
  if (raw.channels() < 1 || raw.channels() > kMaxChannels) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image has ", raw.channels(),
                     " channels; expected 1 to ", kMaxChannels));
  }
  const int64_t width = raw.width(), height = raw.height();
  if (absl::Status size = CheckSize(width, height, limits); !size.ok()) {
    return size;
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

// Brings decoded pixels to the depths and channel order the models take.
absl::StatusOr<cv::Mat> Normalise(cv::Mat decoded) {
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
  if (decoded.channels() == 3) {
    cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
  } else if (decoded.channels() == 4) {
    cv::cvtColor(decoded, decoded, cv::COLOR_BGRA2RGBA);
  } else if (decoded.channels() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image has ", decoded.channels(), " channels; expected 1, 3 or 4"));
  }
  return decoded;
}

absl::StatusOr<cv::Mat> DecodeEncoded(const std::string& bytes,
                                      const DecodeLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty");
  const ImageFormat format = SniffImageFormat(bytes);
  switch (format) {
    case ImageFormat::kPng:
    case ImageFormat::kTiff:
    case ImageFormat::kJpeg:
    case ImageFormat::kBmp:
      break;
    case ImageFormat::kUnknown:
      return absl::InvalidArgumentError(
          "image bytes are not PNG, TIFF, JPEG, BMP or DICOM (unknown "
          "signature)");
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("image format ", ImageFormatName(format),
                       " is not accepted; send PNG, TIFF, JPEG or BMP"));
  }
  cv::Mat decoded;
  if (format == ImageFormat::kPng) {
    // Before libpng sees a length it would act on.
    if (absl::Status chunks = CheckPngChunkLengths(bytes); !chunks.ok()) {
      return chunks;
    }
    // Grayscale PNGs, the common case, have a faster path; whatever it
    // declines, OpenCV decodes or refuses below.
    if (std::optional<cv::Mat> gray = DecodeGrayPng(bytes, limits)) {
      decoded = *std::move(gray);
    }
  }
  try {
    if (decoded.empty()) {
      const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                           const_cast<char*>(bytes.data()));
      decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
    }
  } catch (const cv::Exception& e) {
    // OpenCV checks the header's size against OPENCV_IO_MAX_IMAGE_* before
    // it allocates; any other exception is a decoder's complaint.
    if (absl::StrContains(e.what(), "validateInputImageSize")) {
      return absl::InvalidArgumentError(absl::StrCat(
          ImageFormatName(format),
          " header declares an image larger than "
          "this server takes (at most ",
          limits.max_pixels, " pixels, ", limits.max_side, " per side)"));
    }
    return FromCvException(
        e, absl::StrCat("decode the ", ImageFormatName(format), " image"));
  }
  if (decoded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decode ", ImageFormatName(format), " image: corrupt"));
  }
  // Also checked here: the environment limits are process-wide and may be
  // looser than the server's.
  if (absl::Status size = CheckSize(decoded.cols, decoded.rows, limits);
      !size.ok()) {
    return size;
  }
  return Normalise(std::move(decoded));
}

}  // namespace

ImageFormat SniffImageFormat(absl::string_view b) {
  if (absl::StartsWith(b, "\x89PNG\r\n\x1a\n")) return ImageFormat::kPng;
  // Classic TIFF (42) and BigTIFF (43), either byte order.
  if (absl::StartsWith(b, absl::string_view("II*\0", 4)) ||
      absl::StartsWith(b, absl::string_view("MM\0*", 4)) ||
      absl::StartsWith(b, absl::string_view("II+\0", 4)) ||
      absl::StartsWith(b, absl::string_view("MM\0+", 4))) {
    return ImageFormat::kTiff;
  }
  if (absl::StartsWith(b, "\xFF\xD8\xFF")) return ImageFormat::kJpeg;
  if (absl::StartsWith(b, "BM")) return ImageFormat::kBmp;
  if (b.size() >= 132 && b.substr(128, 4) == "DICM") {
    return ImageFormat::kDicom;
  }
  if (b.size() >= 12 && absl::StartsWith(b, "RIFF") &&
      b.substr(8, 4) == "WEBP") {
    return ImageFormat::kWebP;
  }
  if (absl::StartsWith(b, absl::string_view("\0\0\0\x0cjP  ", 8)) ||
      absl::StartsWith(b, "\xFF\x4F\xFF\x51")) {
    return ImageFormat::kJpeg2000;
  }
  if (absl::StartsWith(b, "#?")) return ImageFormat::kRadianceHdr;
  if (b.size() >= 2 && b[0] == 'P' &&
      ((b[1] >= '1' && b[1] <= '7') || b[1] == 'F' || b[1] == 'f')) {
    return ImageFormat::kPortableAnymap;
  }
  if (absl::StartsWith(b, "\x59\xA6\x6A\x95")) return ImageFormat::kSunRaster;
  if (absl::StartsWith(b, "\x76\x2F\x31\x01")) return ImageFormat::kOpenExr;
  if (absl::StartsWith(b, "GIF8")) return ImageFormat::kGif;
  return ImageFormat::kUnknown;
}

absl::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kTiff:
      return "TIFF";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kDicom:
      return "DICOM";
    case ImageFormat::kWebP:
      return "WebP";
    case ImageFormat::kJpeg2000:
      return "JPEG 2000";
    case ImageFormat::kRadianceHdr:
      return "Radiance HDR";
    case ImageFormat::kPortableAnymap:
      return "PxM/PFM";
    case ImageFormat::kSunRaster:
      return "Sun raster";
    case ImageFormat::kOpenExr:
      return "OpenEXR";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

absl::StatusOr<cv::Mat> DecodeImage(const Image& image,
                                    const DecodeLimits& limits) {
  try {
    switch (image.source_case()) {
      case Image::kEncoded:
        return DecodeEncoded(image.encoded(), limits);
      case Image::kRaw:
        return DecodeRaw(image.raw(), limits);
      default:
        return absl::InvalidArgumentError("request has no image");
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory decoding the image");
  } catch (const cv::Exception& e) {
    // Conversions after decoding; their input is the client's.
    return FromCvException(e, "convert the image");
  }
}

}  // namespace unet
