#include "model/training/augment.h"

#include "gtest/gtest.h"

namespace unet {
namespace {

// A label of large blocks, and an image whose gray value says the label:
// 40 where it is 0, 220 where it is 1.
Sample Blocks() {
  Sample sample;
  sample.label = cv::Mat(128, 128, CV_8UC1, cv::Scalar(0));
  for (int y = 0; y < 128; y += 32) {
    for (int x = (y / 32) % 2 * 32; x < 128; x += 64) {
      sample.label(cv::Rect(x, y, 32, 32)).setTo(1);
    }
  }
  sample.image = 40 + sample.label * 180;
  return sample;
}

AugmentOptions GeometryOnly() {
  AugmentOptions options;
  options.max_gamma_change = 0;
  options.max_brightness_change = 0;
  return options;
}

TEST(AugmentTest, ImageAndLabelStayAligned) {
  std::mt19937 random(7);
  for (int i = 0; i < 10; ++i) {
    const Sample out = Augment(Blocks(), GeometryOnly(), random);
    ASSERT_EQ(out.image.size(), out.label.size());
    // Where the image is clearly one class, the label must agree; only the
    // block edges, blurred by bicubic interpolation, are left out.
    int agree = 0, clear = 0;
    for (int y = 0; y < 128; ++y) {
      for (int x = 0; x < 128; ++x) {
        const int value = out.image.at<uint8_t>(y, x);
        if (value > 60 && value < 200) continue;
        ++clear;
        agree += (value >= 200) == (out.label.at<uint8_t>(y, x) == 1);
      }
    }
    EXPECT_GT(clear, 128 * 128 * 8 / 10);
    EXPECT_EQ(agree, clear) << "augmentation " << i;
  }
}

TEST(AugmentTest, ActuallyDeforms) {
  std::mt19937 random(3);
  const Sample in = Blocks();
  const Sample out = Augment(in, GeometryOnly(), random);
  EXPECT_GT(cv::countNonZero(out.label != in.label), 128 * 128 / 20);
}

TEST(AugmentTest, LabelsKeepTheirValues) {
  std::mt19937 random(5);
  const Sample out = Augment(Blocks(), AugmentOptions(), random);
  double low = 0, high = 0;
  cv::minMaxLoc(out.label, &low, &high);
  EXPECT_GE(low, 0);
  EXPECT_LE(high, 1);  // nearest neighbour: no blended classes
}

TEST(AugmentTest, SameSeedSameResult) {
  std::mt19937 a(11), b(11);
  const Sample x = Augment(Blocks(), AugmentOptions(), a);
  const Sample y = Augment(Blocks(), AugmentOptions(), b);
  EXPECT_EQ(cv::countNonZero(x.image != y.image), 0);
  EXPECT_EQ(cv::countNonZero(x.label != y.label), 0);
}

TEST(AugmentTest, GrayValuesChangeTheImageOnly) {
  AugmentOptions options;
  options.flips = false;
  options.max_rotation_degrees = 0;
  options.max_shift_pixels = 0;
  options.elastic_grid = 0;
  options.max_gamma_change = 0.5;
  options.max_brightness_change = 0.2;
  std::mt19937 random(2);
  const Sample in = Blocks();
  const Sample out = Augment(in, options, random);
  EXPECT_EQ(cv::countNonZero(out.label != in.label), 0);
  EXPECT_GT(cv::norm(out.image, in.image, cv::NORM_INF), 5);
}

}  // namespace
}  // namespace unet
