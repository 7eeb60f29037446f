#ifndef CLIENT_CLI_MASK_RENDERING_H_
#define CLIENT_CLI_MASK_RENDERING_H_

// Pictures of a class-index mask for people: an overlay on the image with a
// legend of the model's class names, and a mask scaled to be visible.

#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace unet::client {

// How much of the class colour an overlay pixel takes.
inline constexpr double kOverlayOpacity = 0.45;

// Returns class `index`'s colour (BGR) from a fixed palette of distinct
// colours, repeating after 10 classes.
cv::Vec3b ClassColour(int index);

// Whether a class is left uncoloured in overlays (named "background").
bool IsBackgroundClass(absl::string_view name);

// Decodes an input file's bytes for display: 8-bit BGR, deeper images
// stretched from their minimum to their maximum.
absl::StatusOr<cv::Mat> DecodeForDisplay(std::string_view encoded);

// Returns `image` (8-bit BGR) with each pixel of class c blended with
// ClassColour(c) (kOverlayOpacity), background classes left as they are,
// and below it a legend strip naming each class in its colour. `mask` is
// CV_8UC1 of the image's size.
cv::Mat RenderOverlay(const cv::Mat& image, const cv::Mat& mask,
                      const std::vector<std::string>& class_names);

// Returns `mask` with class c as c * 255 / (num_classes - 1), so that two
// classes become black and white.
cv::Mat VisibleMask(const cv::Mat& mask, int num_classes);

}  // namespace unet::client

#endif  // CLIENT_CLI_MASK_RENDERING_H_
