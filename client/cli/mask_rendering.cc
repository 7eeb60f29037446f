#include "client/cli/mask_rendering.h"

#include <algorithm>
#include <array>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace unet::client {

cv::Vec3b ClassColour(int index) {
  // Tableau's ten categorical colours, as BGR.
  static constexpr std::array<std::array<uint8_t, 3>, 10> kPalette = {{
      {180, 119, 31},
      {14, 127, 255},
      {44, 160, 44},
      {40, 39, 214},
      {189, 103, 148},
      {75, 86, 140},
      {194, 119, 227},
      {127, 127, 127},
      {34, 189, 188},
      {207, 190, 23},
  }};
  const auto& colour = kPalette[static_cast<size_t>(index) % kPalette.size()];
  return {colour[0], colour[1], colour[2]};
}

bool IsBackgroundClass(absl::string_view name) {
  return absl::AsciiStrToLower(name) == "background";
}

absl::StatusOr<cv::Mat> DecodeForDisplay(std::string_view encoded) {
  cv::Mat image;
  try {
    const cv::Mat bytes(1, static_cast<int>(encoded.size()), CV_8UC1,
                        const_cast<char*>(encoded.data()));
    image = cv::imdecode(bytes, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    if (image.empty()) {
      return absl::InvalidArgumentError("cannot decode the image to draw on");
    }
    if (image.depth() != CV_8U) {
      cv::Mat stretched;
      cv::normalize(image, stretched, 0, 255, cv::NORM_MINMAX, CV_8U);
      image = stretched;
    }
    if (image.channels() == 1) {
      cv::cvtColor(image, image, cv::COLOR_GRAY2BGR);
    } else if (image.channels() == 4) {
      cv::cvtColor(image, image, cv::COLOR_BGRA2BGR);
    }
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decode the image to draw on: ", e.what()));
  }
  return image;
}

namespace {

constexpr int kLegendRowHeight = 20;

void DrawLegend(const std::vector<std::string>& class_names, cv::Mat strip) {
  strip.setTo(cv::Scalar(255, 255, 255));
  for (size_t c = 0; c < class_names.size(); ++c) {
    const int top = static_cast<int>(c) * kLegendRowHeight;
    const cv::Vec3b colour = ClassColour(static_cast<int>(c));
    const cv::Scalar swatch = IsBackgroundClass(class_names[c])
                                  ? cv::Scalar(0, 0, 0)
                                  : cv::Scalar(colour[0], colour[1], colour[2]);
    cv::rectangle(strip, cv::Rect(4, top + 4, 12, 12), swatch, cv::FILLED);
    cv::putText(strip, absl::StrCat(c, " ", class_names[c]),
                cv::Point(22, top + 15), cv::FONT_HERSHEY_SIMPLEX, 0.45,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
}

}  // namespace

cv::Mat RenderOverlay(const cv::Mat& image, const cv::Mat& mask,
                      const std::vector<std::string>& class_names) {
  const int legend_height =
      static_cast<int>(class_names.size()) * kLegendRowHeight;
  cv::Mat overlay(image.rows + legend_height, image.cols, CV_8UC3);
  cv::Mat picture = overlay.rowRange(0, image.rows);
  image.copyTo(picture);
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* classes = mask.ptr<uint8_t>(y);
    cv::Vec3b* pixels = picture.ptr<cv::Vec3b>(y);
    for (int x = 0; x < mask.cols; ++x) {
      const int c = classes[x];
      if (c < static_cast<int>(class_names.size()) &&
          IsBackgroundClass(class_names[c])) {
        continue;
      }
      const cv::Vec3b colour = ClassColour(c);
      for (int k = 0; k < 3; ++k) {
        pixels[x][k] = cv::saturate_cast<uint8_t>(
            (1 - kOverlayOpacity) * pixels[x][k] + kOverlayOpacity * colour[k]);
      }
    }
  }
  if (legend_height > 0) {
    DrawLegend(class_names, overlay.rowRange(image.rows, overlay.rows));
  }
  return overlay;
}

cv::Mat VisibleMask(const cv::Mat& mask, int num_classes) {
  cv::Mat visible;
  mask.convertTo(visible, CV_8U, 255.0 / std::max(1, num_classes - 1));
  return visible;
}

}  // namespace unet::client
