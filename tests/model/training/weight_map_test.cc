#include "model/training/weight_map.h"

#include <cmath>

#include "gtest/gtest.h"

namespace unet {
namespace {

// Two 10x10 cells side by side, two background columns between them:
//
//   cells at x in [5, 15) and [17, 27), rows [5, 15) of a 20x32 label.
cv::Mat TwoCells() {
  cv::Mat label(20, 32, CV_8UC1, cv::Scalar(0));
  label(cv::Rect(5, 5, 10, 10)).setTo(255);
  label(cv::Rect(17, 5, 10, 10)).setTo(255);
  return label;
}

TEST(BorderWeightMapTest, BalancesClassesInsideCells) {
  const cv::Mat label = TwoCells();
  const cv::Mat w = BorderWeightMap(label, {});
  ASSERT_EQ(w.type(), CV_32F);
  ASSERT_EQ(w.size(), label.size());
  const double total = 20 * 32, interior = 200;
  EXPECT_NEAR(w.at<float>(10, 10), total / (2 * interior), 1e-4);
}

TEST(BorderWeightMapTest, WeighsTheGapBetweenTouchingCells) {
  const cv::Mat w = BorderWeightMap(TwoCells(), {});
  const double background_weight = 640.0 / (2 * 440);
  // Column 15 is next to the left cell (d1 = 1) and two pixels from the
  // right one (d2 = 2): 10 * exp(-9 / 50) on top of the class weight.
  EXPECT_NEAR(w.at<float>(10, 15), background_weight + 10 * std::exp(-9.0 / 50),
              1e-3);
  EXPECT_NEAR(w.at<float>(10, 16), w.at<float>(10, 15), 1e-5);  // symmetric
  // Far from both cells, the border term has faded.
  EXPECT_NEAR(w.at<float>(0, 0), background_weight, 0.05);
  EXPECT_GT(w.at<float>(10, 15), w.at<float>(2, 15));
}

TEST(BorderWeightMapTest, ALoneCellHasNoBorderTerm) {
  cv::Mat label(16, 16, CV_8UC1, cv::Scalar(0));
  label(cv::Rect(4, 4, 8, 8)).setTo(255);
  const cv::Mat w = BorderWeightMap(label, {});
  const double background_weight = 256.0 / (2 * (256 - 64));
  EXPECT_NEAR(w.at<float>(4, 3), background_weight, 1e-5);
}

TEST(BorderWeightMapTest, FollowsW0AndSigma) {
  const cv::Mat a = BorderWeightMap(TwoCells(), {10, 5});
  const cv::Mat b = BorderWeightMap(TwoCells(), {20, 5});
  const cv::Mat c = BorderWeightMap(TwoCells(), {10, 1});
  const double base = 640.0 / (2 * 440);
  EXPECT_NEAR(b.at<float>(10, 15) - base, 2 * (a.at<float>(10, 15) - base),
              1e-3);
  EXPECT_NEAR(c.at<float>(10, 15) - base, 10 * std::exp(-9.0 / 2), 1e-3);
}

}  // namespace
}  // namespace unet
