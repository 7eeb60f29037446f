#ifndef MODEL_TRAINING_AUGMENT_H_
#define MODEL_TRAINING_AUGMENT_H_

// The data augmentation of the U-Net paper, applied identically to an image
// and its label: flips, rotations, shifts, and above all elastic
// deformations (random displacements on a coarse 3x3 grid with a 10 px
// standard deviation, interpolated to every pixel bicubically), plus
// gray-value changes of the image alone. Everything is drawn from the given
// generator, so that a seeded run is reproducible.

#include <cstdint>
#include <opencv2/core.hpp>
#include <random>

namespace unet {

struct AugmentOptions {
  bool flips = true;
  double max_rotation_degrees = 180;   // uniform in [-max, max]
  double max_shift_pixels = 16;        // uniform per axis
  int elastic_grid = 3;                // control points per side
  double elastic_sigma_pixels = 10;    // std of their displacements
  double max_gamma_change = 0.2;       // gray values: gamma in [1-g, 1+g]
  double max_brightness_change = 0.1;  // and + b * full range
};

struct Sample {
  cv::Mat image;    // CV_8U or CV_16U, one or more channels
  cv::Mat label;    // CV_8U class or instance values, same size
  cv::Mat weights;  // optional CV_32F per-pixel loss weights, same size
};

// Returns a deformed copy of `sample`: the image interpolated bicubically,
// the label by nearest neighbour, the weights bilinearly, all mirrored at
// the borders.
Sample Augment(const Sample& sample, const AugmentOptions& options,
               std::mt19937& random);

}  // namespace unet

#endif  // MODEL_TRAINING_AUGMENT_H_
