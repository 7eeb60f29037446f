#include "model/training/training_plot.h"

#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

const cv::Scalar kRed(0, 0, 255);

// Pixels of exactly `color` in `region` of `image`.
int CountColor(const cv::Mat& image, const cv::Rect& region,
               const cv::Scalar& color) {
  cv::Mat match;
  cv::inRange(image(region), color, color, match);
  return cv::countNonZero(match);
}

TEST(DrawChartTest, DrawsARisingSeriesFromLowerLeftToUpperRight) {
  const cv::Size size(400, 300);
  const cv::Mat chart = DrawChart("t", {{"up", kRed, {{0, 0}, {10, 1}}}}, size);
  ASSERT_EQ(chart.size(), size);
  const int w = size.width / 2, h = size.height / 2;
  EXPECT_GT(CountColor(chart, {0, h, w, h}, kRed), 0);  // lower left
  EXPECT_GT(CountColor(chart, {w, 0, w, h}, kRed), 0);  // upper right
  // Upper left holds only the legend, which sits at the right.
  EXPECT_EQ(CountColor(chart, {0, 0, w, h}, kRed), 0);
}

TEST(DrawChartTest, DrawsAxesWithoutData) {
  const cv::Mat chart = DrawChart("empty", {}, {300, 200});
  EXPECT_EQ(chart.size(), cv::Size(300, 200));
  EXPECT_LT(cv::mean(chart)[0], 255);  // frame and title
}

TEST(PlotTrainingLogTest, WritesBothChartsFromTheLog) {
  const fs::path dir = testing::FreshTestDir();
  std::ofstream(dir / "log.csv") << "step,loss,pixel_error\n"
                                    "1,0.7,\n2,0.6,0.2\n3,0.5,\n4,0.4,0.1\n";
  ASSERT_TRUE(PlotTrainingLog(dir / "log.csv", dir / "plot.png").ok());
  const cv::Mat plot = cv::imread((dir / "plot.png").string());
  ASSERT_FALSE(plot.empty());
  EXPECT_EQ(plot.cols, 900);
  EXPECT_EQ(plot.rows, 2 * 360);
}

TEST(PlotTrainingLogTest, RefusesAMissingOrForeignLog) {
  const fs::path dir = testing::FreshTestDir();
  EXPECT_EQ(PlotTrainingLog(dir / "none.csv", dir / "p.png").code(),
            absl::StatusCode::kNotFound);
  std::ofstream(dir / "other.csv") << "a,b\n1,2\n";
  EXPECT_EQ(PlotTrainingLog(dir / "other.csv", dir / "p.png").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
