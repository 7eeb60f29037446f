#include "model/training/weight_map.h"

#include <limits>
#include <opencv2/imgproc.hpp>

namespace unet {

cv::Mat BorderWeightMap(const cv::Mat& cells, const WeightMapOptions& options) {
  CV_Assert(cells.type() == CV_8UC1);
  const cv::Mat interior = cells != 0;

  // w_c: each class weighs total / (2 * its pixel count), so that both
  // classes contribute equally to the loss.
  const double total = static_cast<double>(cells.total());
  const double interior_count = std::max(1, cv::countNonZero(interior));
  const double background_count = std::max(1.0, total - interior_count);
  cv::Mat weights(cells.size(), CV_32F);
  weights.setTo(total / (2 * background_count));
  weights.setTo(total / (2 * interior_count), interior);

  // d1, d2: per pixel, the two smallest distances to any cell.
  cv::Mat labels;
  const int count = cv::connectedComponents(interior, labels, 4, CV_32S);
  const float infinity = std::numeric_limits<float>::infinity();
  cv::Mat d1(cells.size(), CV_32F, cv::Scalar(infinity));
  cv::Mat d2 = d1.clone();
  cv::Mat outside, distance;
  for (int cell = 1; cell < count; ++cell) {  // label 0 is the background
    outside = labels != cell;
    cv::distanceTransform(outside, distance, cv::DIST_L2,
                          cv::DIST_MASK_PRECISE);
    for (int y = 0; y < cells.rows; ++y) {
      const float* d = distance.ptr<float>(y);
      float* first = d1.ptr<float>(y);
      float* second = d2.ptr<float>(y);
      for (int x = 0; x < cells.cols; ++x) {
        if (d[x] < first[x]) {
          second[x] = first[x];
          first[x] = d[x];
        } else if (d[x] < second[x]) {
          second[x] = d[x];
        }
      }
    }
  }
  const double two_sigma_squared = 2 * options.sigma * options.sigma;
  for (int y = 0; y < cells.rows; ++y) {
    const uint8_t* inside = interior.ptr<uint8_t>(y);
    const float* first = d1.ptr<float>(y);
    const float* second = d2.ptr<float>(y);
    float* w = weights.ptr<float>(y);
    for (int x = 0; x < cells.cols; ++x) {
      if (inside[x] || second[x] == infinity) continue;  // needs two cells
      const double sum = first[x] + second[x];
      w[x] += static_cast<float>(options.w0 *
                                 std::exp(-sum * sum / two_sigma_squared));
    }
  }
  return weights;
}

}  // namespace unet
