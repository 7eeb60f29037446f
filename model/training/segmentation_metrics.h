#ifndef MODEL_TRAINING_SEGMENTATION_METRICS_H_
#define MODEL_TRAINING_SEGMENTATION_METRICS_H_

// Validation metrics of a two-class (cell / membrane) segmentation, as the
// ISBI 2012 challenge defines them, so that our numbers compare with the
// U-Net paper's:
//
//   pixel_error  1 - the best F-score of cell pixels over thresholds of the
//                cell probability (pooled over images)
//   rand_error   1 - the best foreground-restricted Rand F-score over the
//                same thresholds (averaged over images); segments are the
//                4-connected cell regions
//   thinned_rand_error  the same after thinning the predicted boundaries
//                away: each predicted membrane pixel joins the nearest
//                predicted cell region (the challenge's later scoring)
//
// plus, at the served mask (arg max): the misclassified fraction, and Dice
// and IoU per class.

#include <array>
#include <cstdint>
#include <map>
#include <opencv2/core.hpp>
#include <string>

namespace unet {

// Foreground-restricted Rand F-score of `proposed` against `truth` (CV_32S
// segment ids, 0 = background). Pixels where the truth is background are
// ignored; proposed background pixels count as singleton segments. It
// compares pixel pairs: precision is the share of pairs joined by `proposed`
// that `truth` joins too, recall the share of pairs joined by `truth` that
// `proposed` joins. 1 when there is no truth segment.
double RandFScore(const cv::Mat& truth, const cv::Mat& proposed);

// Accumulates images and reports the metrics above by name.
class SegmentationScorer {
 public:
  // `mask` (CV_8U classes) and `cell_probability` (CV_32F) are the served
  // result for an image whose classes (CV_8U, 0 = cell) are `label`.
  void Add(const cv::Mat& mask, const cv::Mat& cell_probability,
           const cv::Mat& label);

  std::map<std::string, double> Metrics() const;

 private:
  static constexpr int kThresholds = 9;  // 0.1, 0.2, ..., 0.9

  struct Counts {
    int64_t true_positive = 0, false_positive = 0, false_negative = 0;
  };
  std::array<Counts, kThresholds> cell_counts_;
  std::array<double, kThresholds> rand_f_sum_ = {};
  std::array<double, kThresholds> thinned_rand_f_sum_ = {};
  int images_ = 0;
  int64_t pixels_ = 0, misclassified_ = 0;
  int64_t intersection_[2] = {0, 0}, predicted_[2] = {0, 0},
          actual_[2] = {0, 0};
};

}  // namespace unet

#endif  // MODEL_TRAINING_SEGMENTATION_METRICS_H_
