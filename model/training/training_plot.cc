#include "model/training/training_plot.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace unet {
namespace {

constexpr int kLeft = 70, kRight = 20, kTop = 40, kBottom = 40;
const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225);

void Text(cv::Mat& image, const std::string& text, cv::Point at,
          const cv::Scalar& color, double scale = 0.45) {
  cv::putText(image, text, at, cv::FONT_HERSHEY_SIMPLEX, scale, color, 1,
              cv::LINE_AA);
}

// Exponential moving average, as the trainer's console shows the loss.
std::vector<cv::Point2d> Smoothed(const std::vector<cv::Point2d>& points) {
  std::vector<cv::Point2d> smoothed = points;
  for (size_t i = 1; i < smoothed.size(); ++i) {
    smoothed[i].y = 0.95 * smoothed[i - 1].y + 0.05 * points[i].y;
  }
  return smoothed;
}

}  // namespace

cv::Mat DrawChart(const std::string& title, const std::vector<Series>& series,
                  cv::Size size) {
  cv::Mat chart(size, CV_8UC3, cv::Scalar::all(255));
  const cv::Rect area(kLeft, kTop, size.width - kLeft - kRight,
                      size.height - kTop - kBottom);
  Text(chart, title, {kLeft, kTop - 15}, kInk, 0.55);
  double x_min = std::numeric_limits<double>::max(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const Series& s : series) {
    for (const cv::Point2d& p : s.points) {
      x_min = std::min(x_min, p.x), x_max = std::max(x_max, p.x);
      y_min = std::min(y_min, p.y), y_max = std::max(y_max, p.y);
    }
  }
  if (x_min > x_max) {  // nothing to draw
    cv::rectangle(chart, area, kInk);
    return chart;
  }
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  y_min = std::min(y_min, 0.0);  // errors and losses read best from zero
  const auto to_pixel = [&](const cv::Point2d& p) {
    return cv::Point(
        area.x + cvRound((p.x - x_min) / (x_max - x_min) * (area.width - 1)),
        area.y + cvRound((y_max - p.y) / (y_max - y_min) * (area.height - 1)));
  };
  for (int i = 0; i <= 4; ++i) {
    const double y = y_min + (y_max - y_min) * i / 4;
    const int row = to_pixel({x_min, y}).y;
    cv::line(chart, {area.x, row}, {area.x + area.width - 1, row}, kGrid);
    Text(chart, absl::StrFormat("%.3g", y), {5, row + 5}, kInk);
    const double x = x_min + (x_max - x_min) * i / 4;
    const std::string label = absl::StrFormat("%.0f", x);
    int baseline = 0;
    const int width =
        cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, 0.45, 1, &baseline)
            .width;
    // Centred under its tick, but never past the chart's right edge.
    const int left =
        std::min(to_pixel({x, y_min}).x - width / 2, size.width - width - 2);
    Text(chart, label, {left, area.y + area.height + 20}, kInk);
  }
  cv::rectangle(chart, area, kInk);
  int legend_y = kTop + 20;
  for (const Series& s : series) {
    std::vector<cv::Point> line;
    for (const cv::Point2d& p : s.points) line.push_back(to_pixel(p));
    cv::polylines(chart, line, false, s.color, 2, cv::LINE_AA);
    if (s.points.size() == 1) cv::circle(chart, line[0], 3, s.color, -1);
    Text(chart, s.name, {area.x + area.width - 190, legend_y}, s.color);
    legend_y += 18;
  }
  Text(chart, "step", {area.x + area.width / 2, size.height - 5}, kInk);
  return chart;
}

absl::Status PlotTrainingLog(const std::filesystem::path& csv,
                             const std::filesystem::path& png) {
  std::ifstream in(csv);
  std::string line;
  if (!std::getline(in, line)) {
    return absl::NotFoundError(absl::StrCat("cannot read ", csv.string()));
  }
  const std::vector<std::string> columns = absl::StrSplit(line, ',');
  if (columns.empty() || columns[0] != "step") {
    return absl::InvalidArgumentError(
        absl::StrCat(csv.string(), " does not start with a step column"));
  }
  // Column i of the log becomes series i - 1.
  std::vector<std::vector<cv::Point2d>> values(columns.size() - 1);
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    double step;
    if (cells.empty() || !absl::SimpleAtod(cells[0], &step)) continue;
    for (size_t i = 1; i < cells.size() && i < columns.size(); ++i) {
      double value;
      if (absl::SimpleAtod(cells[i], &value)) {
        values[i - 1].push_back({step, value});
      }
    }
  }
  const cv::Scalar palette[] = {{200, 120, 30},
                                {40, 40, 200},
                                {40, 160, 40},
                                {160, 40, 160},
                                {30, 140, 200}};
  std::vector<Series> loss, validation;
  for (size_t i = 1; i < columns.size(); ++i) {
    const cv::Scalar color = palette[(i - 1) % std::size(palette)];
    if (columns[i] == "loss") {
      loss.push_back({"loss (smoothed)", color, Smoothed(values[i - 1])});
    } else {
      validation.push_back({columns[i], color, values[i - 1]});
    }
  }
  const cv::Size size(900, 360);
  cv::Mat plot;
  cv::vconcat(DrawChart("training loss", loss, size),
              DrawChart("validation (held-out images)", validation, size),
              plot);
  if (!cv::imwrite(png.string(), plot)) {
    return absl::InternalError(absl::StrCat("cannot write ", png.string()));
  }
  return absl::OkStatus();
}

}  // namespace unet
