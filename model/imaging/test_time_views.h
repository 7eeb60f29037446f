#ifndef MODEL_IMAGING_TEST_TIME_VIEWS_H_
#define MODEL_IMAGING_TEST_TIME_VIEWS_H_

// Test-time augmentation: the 8 views of an image under flips and 90-degree
// turns (the dihedral group), and the way back from a view's output to the
// image. Averaging the soft-max over all views is what the paper did with
// rotations for its EM result and nnU-Net does with mirroring.

#include <opencv2/core.hpp>

namespace unet {

inline constexpr int kTestTimeViews = 8;

// Returns view `view` (0..7) of `image`: mirrored left to right when
// view >= 4, then turned clockwise by 90 degrees (view % 4) times. View 0 is
// the image itself (not copied).
cv::Mat ViewOf(const cv::Mat& image, int view);

// Returns `block`, a part of view `view`, turned back to the image's
// orientation.
cv::Mat UnviewBlock(const cv::Mat& block, int view);

// Returns where `rect`, in the coordinates of view `view` of an image of
// `image_size`, lies in the image.
cv::Rect UnviewRect(const cv::Rect& rect, int view, cv::Size image_size);

// Adds the `classes` planes of `block`, the probabilities of part `part` of
// view `view` (class-major, the part's size), into `sums`, class-major over
// an image of `image_size`, at the part's place in the image.
void AddUnviewed(const float* block, const cv::Rect& part, int view,
                 int classes, cv::Size image_size, float* sums);

// Turns `sums` (class-major, over `views` views) into their mean, in place,
// and writes each pixel's most probable class (the first of equals, as the
// whole-image path picks) into `mask` (CV_8U, the image's size).
void MeanOverViews(float* sums, int classes, int views, cv::Mat& mask);

}  // namespace unet

#endif  // MODEL_IMAGING_TEST_TIME_VIEWS_H_
