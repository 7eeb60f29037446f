#ifndef MODEL_TRAINING_WEIGHT_MAP_H_
#define MODEL_TRAINING_WEIGHT_MAP_H_

// The U-Net paper's per-pixel loss weights (Ronneberger et al. 2015, eq. 2):
//
//   w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))
//
// w_c balances the class frequencies; d1 and d2 are the distances to the
// nearest and the second nearest cell. The border term is applied to the
// background (membrane) pixels, where it forces the network to learn the
// thin separations between touching cells. Computed once per label.

#include <opencv2/core.hpp>

namespace unet {

struct WeightMapOptions {
  double w0 = 10.0;
  double sigma = 5.0;  // pixels
};

// Returns the CV_32F weight map of `cells`, a CV_8U mask whose non-zero
// pixels are cell interior and zero pixels background. Cells are the
// 4-connected components of the interior.
cv::Mat BorderWeightMap(const cv::Mat& cells, const WeightMapOptions& options);

}  // namespace unet

#endif  // MODEL_TRAINING_WEIGHT_MAP_H_
