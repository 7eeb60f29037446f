#include "model/training/augment.h"

#include <cmath>
#include <opencv2/imgproc.hpp>

namespace unet {
namespace {

double Uniform(std::mt19937& random, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(random);
}

// Per-pixel displacements from Gaussian ones on a coarse grid, upsampled
// bicubically, as the paper describes.
cv::Mat ElasticField(cv::Size size, const AugmentOptions& options,
                     std::mt19937& random) {
  cv::Mat coarse(options.elastic_grid, options.elastic_grid, CV_32FC2);
  std::normal_distribution<float> normal(0.0f, options.elastic_sigma_pixels);
  for (auto it = coarse.begin<cv::Vec2f>(); it != coarse.end<cv::Vec2f>();
       ++it) {
    *it = cv::Vec2f(normal(random), normal(random));
  }
  cv::Mat field;
  cv::resize(coarse, field, size, 0, 0, cv::INTER_CUBIC);
  return field;
}

}  // namespace

Sample Augment(const Sample& sample, const AugmentOptions& options,
               std::mt19937& random) {
  CV_Assert(sample.image.size() == sample.label.size());
  const cv::Size size = sample.image.size();
  const cv::Point2f centre(size.width / 2.0f, size.height / 2.0f);

  // One affine map (flip, rotation, shift) and one elastic field, composed
  // into a single sampling map so that each pixel is interpolated once.
  const bool flip = options.flips && Uniform(random, 0, 1) < 0.5;
  const double angle = Uniform(random, -options.max_rotation_degrees,
                               options.max_rotation_degrees);
  const double shift_x =
      Uniform(random, -options.max_shift_pixels, options.max_shift_pixels);
  const double shift_y =
      Uniform(random, -options.max_shift_pixels, options.max_shift_pixels);
  const cv::Mat rotation = cv::getRotationMatrix2D(centre, angle, 1.0);
  const cv::Mat field = options.elastic_grid > 0
                            ? ElasticField(size, options, random)
                            : cv::Mat(size, CV_32FC2, cv::Scalar(0, 0));
  cv::Mat map_x(size, CV_32F), map_y(size, CV_32F);
  for (int y = 0; y < size.height; ++y) {
    for (int x = 0; x < size.width; ++x) {
      const cv::Vec2f d = field.at<cv::Vec2f>(y, x);
      // Output pixel (x, y) samples the source at the inverse map.
      const double u = x + d[0] + shift_x, v = y + d[1] + shift_y;
      double sx = rotation.at<double>(0, 0) * u +
                  rotation.at<double>(0, 1) * v + rotation.at<double>(0, 2);
      const double sy = rotation.at<double>(1, 0) * u +
                        rotation.at<double>(1, 1) * v +
                        rotation.at<double>(1, 2);
      if (flip) sx = size.width - 1 - sx;
      map_x.at<float>(y, x) = static_cast<float>(sx);
      map_y.at<float>(y, x) = static_cast<float>(sy);
    }
  }
  Sample out;
  cv::remap(sample.image, out.image, map_x, map_y, cv::INTER_CUBIC,
            cv::BORDER_REFLECT_101);
  cv::remap(sample.label, out.label, map_x, map_y, cv::INTER_NEAREST,
            cv::BORDER_REFLECT_101);
  if (!sample.weights.empty()) {
    cv::remap(sample.weights, out.weights, map_x, map_y, cv::INTER_LINEAR,
              cv::BORDER_REFLECT_101);
  }

  // Gray values: gamma and brightness, on the image only.
  const double gamma =
      1 + Uniform(random, -options.max_gamma_change, options.max_gamma_change);
  const double brightness = Uniform(random, -options.max_brightness_change,
                                    options.max_brightness_change);
  if (gamma != 1 || brightness != 0) {
    const double range = out.image.depth() == CV_16U ? 65535.0 : 255.0;
    cv::Mat unit;
    out.image.convertTo(unit, CV_32F, 1.0 / range);
    cv::pow(unit, gamma, unit);
    unit += brightness;
    unit.convertTo(out.image, out.image.depth(), range);  // saturates
  }
  return out;
}

}  // namespace unet
