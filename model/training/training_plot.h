#ifndef MODEL_TRAINING_TRAINING_PLOT_H_
#define MODEL_TRAINING_TRAINING_PLOT_H_

// Draws the training curves from the trainer's CSV log into a PNG: the
// training loss above, the validation errors below, against the step.

#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace unet {

struct Series {
  std::string name;
  cv::Scalar color;                 // BGR
  std::vector<cv::Point2d> points;  // (step, value)
};

// One chart with axes, a legend and each series as a polyline, scaled to
// the range of all points.
cv::Mat DrawChart(const std::string& title, const std::vector<Series>& series,
                  cv::Size size);

// Reads `csv` (a header naming step, loss and validation columns; empty
// cells where a row has no value) and writes the two charts to `png`.
absl::Status PlotTrainingLog(const std::filesystem::path& csv,
                             const std::filesystem::path& png);

}  // namespace unet

#endif  // MODEL_TRAINING_TRAINING_PLOT_H_
