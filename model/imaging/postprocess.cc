#include "model/imaging/postprocess.h"

#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "model/imaging/mask_png.h"

namespace unet {
namespace {

// Returns the offset of the image's window in an output that is `in - out`
// pixels smaller than the padded input, centred on it.
int WindowOffset(int pad, int in, int out) { return pad - (in - out) / 2; }

// Turns an allocation failure into RESOURCE_EXHAUSTED, so that no exception
// leaves this module.
template <typename Fn>
auto WithoutExceptions(absl::string_view doing, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: cannot ", doing));
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory: cannot ", doing));
    }
    return absl::InternalError(absl::StrCat("cannot ", doing, ": ", e.err));
  }
}

// Where the image lies in the network's output: its top-left corner.
struct Window {
  int top = 0, left = 0;
};

absl::StatusOr<Window> ImageWindow(int out_height, int out_width,
                                   const PreparedImage& image) {
  const int top = WindowOffset(image.pad_top, image.padded_height, out_height);
  const int left = WindowOffset(image.pad_left, image.padded_width, out_width);
  if (top < 0 || left < 0 || top + image.height > out_height ||
      left + image.width > out_width) {
    return absl::InternalError(absl::StrCat("network output ", out_height, "x",
                                            out_width,
                                            " does not cover the image"));
  }
  return Window{top, left};
}

absl::StatusOr<Segmentation> Extract(const float* logits, int classes,
                                     int out_height, int out_width,
                                     const PreparedImage& image,
                                     bool with_probabilities) {
  if (classes < 1) return absl::InternalError("network output has no class");
  const absl::StatusOr<Window> window =
      ImageWindow(out_height, out_width, image);
  if (!window.ok()) return window.status();
  const int top = window->top, left = window->left;
  Segmentation result;
  result.mask.create(image.height, image.width, CV_8U);
  const size_t out_plane = static_cast<size_t>(out_height) * out_width;
  const size_t mask_plane = static_cast<size_t>(image.height) * image.width;
  if (with_probabilities) result.probabilities.resize(classes * mask_plane);
  std::vector<float> scores(classes);
  for (int y = 0; y < image.height; ++y) {
    uint8_t* mask_row = result.mask.ptr<uint8_t>(y);
    for (int x = 0; x < image.width; ++x) {
      const size_t at = static_cast<size_t>(top + y) * out_width + left + x;
      int best = 0;
      for (int c = 0; c < classes; ++c) {
        scores[c] = logits[c * out_plane + at];
        if (scores[c] > scores[best]) best = c;
      }
      mask_row[x] = static_cast<uint8_t>(best);
      if (!with_probabilities) continue;
      const float max_score = scores[best];
      float sum = 0;
      for (float& s : scores) sum += (s = std::exp(s - max_score));
      const size_t pixel = static_cast<size_t>(y) * image.width + x;
      for (int c = 0; c < classes; ++c) {
        result.probabilities[c * mask_plane + pixel] = scores[c] / sum;
      }
    }
  }
  return result;
}

absl::StatusOr<cv::Mat> CropLabels(const uint8_t* labels, int out_height,
                                   int out_width, const PreparedImage& image) {
  const absl::StatusOr<Window> window =
      ImageWindow(out_height, out_width, image);
  if (!window.ok()) return window.status();
  const cv::Mat all(out_height, out_width, CV_8U, const_cast<uint8_t*>(labels));
  return all(cv::Rect(window->left, window->top, image.width, image.height))
      .clone();
}

absl::StatusOr<std::string> Encode(const cv::Mat& mask,
                                   segmentation::v1::MaskEncoding encoding) {
  if (encoding == segmentation::v1::RAW) {
    const cv::Mat dense = mask.isContinuous() ? mask : mask.clone();
    return std::string(reinterpret_cast<const char*>(dense.data),
                       dense.total());
  }
  if (encoding != segmentation::v1::PNG) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown mask_encoding ", static_cast<int>(encoding)));
  }
  return EncodeMaskPng(mask);
}

}  // namespace

absl::StatusOr<Segmentation> ExtractSegmentation(const float* logits,
                                                 int classes, int out_height,
                                                 int out_width,
                                                 const PreparedImage& image,
                                                 bool with_probabilities) {
  return WithoutExceptions("extract the mask", [&] {
    return Extract(logits, classes, out_height, out_width, image,
                   with_probabilities);
  });
}

absl::StatusOr<cv::Mat> ExtractMask(const uint8_t* labels, int out_height,
                                    int out_width, const PreparedImage& image) {
  return WithoutExceptions("extract the mask", [&] {
    return CropLabels(labels, out_height, out_width, image);
  });
}

absl::StatusOr<std::string> EncodeMask(
    const cv::Mat& mask, segmentation::v1::MaskEncoding encoding) {
  return WithoutExceptions("encode the mask",
                           [&] { return Encode(mask, encoding); });
}

}  // namespace unet
