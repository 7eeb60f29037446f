#include "model/imaging/test_time_views.h"

#include <algorithm>
#include <utility>

namespace unet {
namespace {

// cv::rotate's code for `turns` clockwise quarter turns (1..3).
cv::RotateFlags Clockwise(int turns) {
  return turns == 1   ? cv::ROTATE_90_CLOCKWISE
         : turns == 2 ? cv::ROTATE_180
                      : cv::ROTATE_90_COUNTERCLOCKWISE;
}

// Where pixel (y, x) of view `view` of an image of `image_size` comes from.
cv::Point SourceOf(int y, int x, int view, cv::Size image_size) {
  const bool mirrored = view >= 4;
  const int turns = view % 4;
  // The view's size: a quarter turn swaps the sides.
  int height = turns % 2 == 0 ? image_size.height : image_size.width;
  int width = turns % 2 == 0 ? image_size.width : image_size.height;
  for (int t = 0; t < turns; ++t) {
    // A clockwise turn of an H x W picture A gives J with
    // J(y, x) = A(H - 1 - x, y), where A's H is J's width.
    const int source_height = width;
    std::tie(y, x) = std::pair(source_height - 1 - x, y);
    std::swap(height, width);
  }
  if (mirrored) x = image_size.width - 1 - x;
  return {x, y};
}

// Each step writes a new picture: the input may be shared by others.
cv::Mat Mirrored(const cv::Mat& image) {
  cv::Mat result;
  cv::flip(image, result, /*flipCode=*/1);
  return result;
}

cv::Mat Turned(const cv::Mat& image, int clockwise_turns) {
  cv::Mat result;
  cv::rotate(image, result, Clockwise(clockwise_turns));
  return result;
}

}  // namespace

cv::Mat ViewOf(const cv::Mat& image, int view) {
  cv::Mat result = view >= 4 ? Mirrored(image) : image;
  return view % 4 == 0 ? result : Turned(result, view % 4);
}

cv::Mat UnviewBlock(const cv::Mat& block, int view) {
  const cv::Mat result = view % 4 == 0 ? block : Turned(block, 4 - view % 4);
  return view >= 4 ? Mirrored(result) : result;
}

cv::Rect UnviewRect(const cv::Rect& rect, int view, cv::Size image_size) {
  const cv::Point a = SourceOf(rect.y, rect.x, view, image_size);
  const cv::Point b = SourceOf(rect.y + rect.height - 1,
                               rect.x + rect.width - 1, view, image_size);
  return cv::Rect(cv::Point(std::min(a.x, b.x), std::min(a.y, b.y)),
                  cv::Point(std::max(a.x, b.x) + 1, std::max(a.y, b.y) + 1));
}

void AddUnviewed(const float* block, const cv::Rect& part, int view,
                 int classes, cv::Size image_size, float* sums) {
  const cv::Rect target = UnviewRect(part, view, image_size);
  for (int c = 0; c < classes; ++c) {
    // size_t: a class plane's offset passes 2^31 in large images.
    const size_t part_plane = size_t{static_cast<size_t>(part.width)} *
                              static_cast<size_t>(part.height);
    const size_t image_plane_size =
        size_t{static_cast<size_t>(image_size.width)} *
        static_cast<size_t>(image_size.height);
    const cv::Mat plane(part.height, part.width, CV_32F,
                        const_cast<float*>(block) + c * part_plane);
    cv::Mat image_plane(image_size, CV_32F, sums + c * image_plane_size);
    image_plane(target) += UnviewBlock(plane, view);
  }
}

void MeanOverViews(float* sums, int classes, int views, cv::Mat& mask) {
  const size_t plane = mask.total();
  const float scale = 1.0f / static_cast<float>(views);
  uint8_t* classes_out = mask.ptr<uint8_t>();
  for (size_t i = 0; i < plane; ++i) {
    int best = 0;
    for (int c = 0; c < classes; ++c) {
      float& p = sums[size_t(c) * plane + i];
      p *= scale;
      if (p > sums[size_t(best) * plane + i]) best = c;
    }
    classes_out[i] = static_cast<uint8_t>(best);
  }
}

}  // namespace unet
