#include "model/training/segmentation_metrics.h"

#include <algorithm>
#include <opencv2/imgproc.hpp>
#include <unordered_map>

#include "model/training/dataset.h"

namespace unet {
namespace {

// Pixel pairs within groups of these sizes.
double Pairs(double n) { return n * (n - 1) / 2; }

double FScore(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall)
                                : 0;
}

cv::Mat CellSegments(const cv::Mat& cells) {
  cv::Mat segments;
  cv::connectedComponents(cells, segments, 4, CV_32S);
  return segments;
}

// The cell segments of `cells` with every other pixel (predicted membrane)
// joined to the nearest segment: boundaries thinned away, as the ISBI 2012
// challenge's later Rand scoring does.
cv::Mat ThinnedCellSegments(const cv::Mat& cells) {
  cv::Mat segments = CellSegments(cells);
  if (cv::countNonZero(cells) == 0) return segments;
  // Each cell pixel is a source with a label of its own; every pixel learns
  // the label of the nearest source.
  cv::Mat distance, nearest;
  cv::distanceTransform(~cells, distance, nearest, cv::DIST_L2, cv::DIST_MASK_5,
                        cv::DIST_LABEL_PIXEL);
  double max_label = 0;
  cv::minMaxLoc(nearest, nullptr, &max_label);
  std::vector<int32_t> segment_of(static_cast<size_t>(max_label) + 1, 0);
  for (int y = 0; y < cells.rows; ++y) {
    const uint8_t* cell = cells.ptr<uint8_t>(y);
    const int32_t* source = nearest.ptr<int32_t>(y);
    const int32_t* segment = segments.ptr<int32_t>(y);
    for (int x = 0; x < cells.cols; ++x) {
      if (cell[x] != 0) segment_of[source[x]] = segment[x];
    }
  }
  for (int y = 0; y < cells.rows; ++y) {
    const int32_t* source = nearest.ptr<int32_t>(y);
    int32_t* segment = segments.ptr<int32_t>(y);
    for (int x = 0; x < cells.cols; ++x) segment[x] = segment_of[source[x]];
  }
  return segments;
}

double ThresholdAt(int i) { return 0.1 * (i + 1); }

}  // namespace

double RandFScore(const cv::Mat& truth, const cv::Mat& proposed) {
  CV_Assert(truth.type() == CV_32S && proposed.type() == CV_32S &&
            truth.size() == proposed.size());
  std::unordered_map<int64_t, int64_t> joint;
  std::unordered_map<int32_t, int64_t> truth_sizes, proposed_sizes;
  for (int y = 0; y < truth.rows; ++y) {
    const int32_t* t = truth.ptr<int32_t>(y);
    const int32_t* p = proposed.ptr<int32_t>(y);
    for (int x = 0; x < truth.cols; ++x) {
      if (t[x] == 0) continue;
      ++truth_sizes[t[x]];
      if (p[x] == 0) continue;  // a singleton: joined to nothing
      ++proposed_sizes[p[x]];
      ++joint[(static_cast<int64_t>(t[x]) << 32) | static_cast<uint32_t>(p[x])];
    }
  }
  double joined_by_both = 0, joined_by_truth = 0, joined_by_proposed = 0;
  for (const auto& [key, n] : joint) joined_by_both += Pairs(n);
  for (const auto& [id, n] : truth_sizes) joined_by_truth += Pairs(n);
  for (const auto& [id, n] : proposed_sizes) joined_by_proposed += Pairs(n);
  if (joined_by_truth == 0) return 1;
  const double precision =
      joined_by_proposed > 0 ? joined_by_both / joined_by_proposed : 1;
  return FScore(precision, joined_by_both / joined_by_truth);
}

void SegmentationScorer::Add(const cv::Mat& mask,
                             const cv::Mat& cell_probability,
                             const cv::Mat& label) {
  CV_Assert(mask.type() == CV_8U && label.type() == CV_8U &&
            cell_probability.type() == CV_32F && mask.size() == label.size() &&
            cell_probability.size() == label.size());
  const cv::Mat truth_cells = label == kCellClass;
  const cv::Mat truth_segments = CellSegments(truth_cells);
  for (int i = 0; i < kThresholds; ++i) {
    const cv::Mat cells = cell_probability > ThresholdAt(i);
    Counts& counts = cell_counts_[i];
    counts.true_positive += cv::countNonZero(cells & truth_cells);
    counts.false_positive += cv::countNonZero(cells & ~truth_cells);
    counts.false_negative += cv::countNonZero(~cells & truth_cells);
    rand_f_sum_[i] += RandFScore(truth_segments, CellSegments(cells));
    thinned_rand_f_sum_[i] +=
        RandFScore(truth_segments, ThinnedCellSegments(cells));
  }
  for (int c = 0; c < 2; ++c) {
    const cv::Mat predicted = mask == c, actual = label == c;
    intersection_[c] += cv::countNonZero(predicted & actual);
    predicted_[c] += cv::countNonZero(predicted);
    actual_[c] += cv::countNonZero(actual);
  }
  misclassified_ += cv::countNonZero(mask != label);
  pixels_ += label.total();
  ++images_;
}

std::map<std::string, double> SegmentationScorer::Metrics() const {
  double best_pixel_f = 0, best_rand_f = 0, best_thinned_rand_f = 0;
  for (int i = 0; i < kThresholds; ++i) {
    const Counts& counts = cell_counts_[i];
    const double tp = counts.true_positive;
    const double precision = tp > 0 ? tp / (tp + counts.false_positive) : 0;
    const double recall = tp > 0 ? tp / (tp + counts.false_negative) : 0;
    best_pixel_f = std::max(best_pixel_f, FScore(precision, recall));
    best_rand_f = std::max(best_rand_f, rand_f_sum_[i] / std::max(1, images_));
    best_thinned_rand_f = std::max(
        best_thinned_rand_f, thinned_rand_f_sum_[i] / std::max(1, images_));
  }
  std::map<std::string, double> metrics;
  metrics["pixel_error"] = 1 - best_pixel_f;
  metrics["rand_error"] = 1 - best_rand_f;
  metrics["thinned_rand_error"] = 1 - best_thinned_rand_f;
  metrics["misclassified_fraction"] =
      static_cast<double>(misclassified_) / std::max<int64_t>(1, pixels_);
  const char* names[2] = {"cell", "membrane"};
  static_assert(kCellClass == 0 && kMembraneClass == 1);
  for (int c = 0; c < 2; ++c) {
    const double inter = intersection_[c];
    metrics[std::string("dice_") + names[c]] =
        2 * inter / std::max<int64_t>(1, predicted_[c] + actual_[c]);
    metrics[std::string("iou_") + names[c]] =
        inter / std::max<double>(1, predicted_[c] + actual_[c] - inter);
  }
  return metrics;
}

}  // namespace unet
