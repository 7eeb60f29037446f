#include "client/cli/mask_rendering.h"

#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"

namespace unet::client {
namespace {

TEST(MaskRenderingTest, OverlayBlendsEachClassColourAndSparesBackground) {
  cv::Mat image(2, 3, CV_8UC3, cv::Scalar(100, 50, 200));
  cv::Mat mask = (cv::Mat_<uint8_t>(2, 3) << 0, 1, 2, 2, 1, 0);
  const cv::Mat overlay =
      RenderOverlay(image, mask, {"background", "nucleus", "membrane"});
  ASSERT_EQ(overlay.cols, 3);
  EXPECT_EQ(overlay.rows, 2 + 3 * 20);  // a legend row per class
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) {
      const int c = mask.at<uint8_t>(y, x);
      for (int k = 0; k < 3; ++k) {
        const double base = image.at<cv::Vec3b>(y, x)[k];
        const double expected =
            c == 0 ? base
                   : 0.55 * base + 0.45 * ClassColour(c)[k];  // opacity 0.45
        EXPECT_NEAR(overlay.at<cv::Vec3b>(y, x)[k], expected, 0.5)
            << y << "," << x << " channel " << k;
      }
    }
  }
}

TEST(MaskRenderingTest, ClassesGetDistinctColours) {
  for (int a = 0; a < 10; ++a) {
    for (int b = a + 1; b < 10; ++b) EXPECT_NE(ClassColour(a), ClassColour(b));
  }
}

TEST(MaskRenderingTest, VisibleMaskSpreadsClassesOverTheGreyRange) {
  const cv::Mat mask = (cv::Mat_<uint8_t>(1, 3) << 0, 1, 2);
  const cv::Mat two = VisibleMask(mask.colRange(0, 2), 2);
  EXPECT_EQ(two.at<uint8_t>(0, 1), 255);
  const cv::Mat three = VisibleMask(mask, 3);
  EXPECT_EQ(three.at<uint8_t>(0, 1), 128);
  EXPECT_EQ(three.at<uint8_t>(0, 2), 255);
}

TEST(MaskRenderingTest, DeepImagesAreStretchedForDisplay) {
  cv::Mat deep = (cv::Mat_<uint16_t>(1, 2) << 1000, 3000);
  std::vector<uint8_t> png;
  cv::imencode(".png", deep, png);
  const auto decoded = DecodeForDisplay(
      std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->type(), CV_8UC3);
  EXPECT_EQ(decoded->at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(decoded->at<cv::Vec3b>(0, 1), cv::Vec3b(255, 255, 255));
  EXPECT_FALSE(DecodeForDisplay("not an image").ok());
}

}  // namespace
}  // namespace unet::client
