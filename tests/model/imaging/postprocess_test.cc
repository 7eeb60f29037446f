#include "model/imaging/postprocess.h"

#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

constexpr int kLevels = 5;

// Plays a network that passes its input through with the U-Net's geometry:
// output pixel (y, x) is input pixel (y + shrink, x + shrink). Class 1 scores
// the pixel's value, class 0 a constant 0.5, so a correctly aligned mask is
// the image thresholded at 0.5.
std::vector<float> PassThroughLogits(const PreparedImage& image, int shrink,
                                     int* out_height, int* out_width) {
  *out_height = image.padded_height - 2 * shrink;
  *out_width = image.padded_width - 2 * shrink;
  const size_t plane = static_cast<size_t>(*out_height) * *out_width;
  std::vector<float> logits(2 * plane, 0.5f);
  for (int y = 0; y < *out_height; ++y) {
    for (int x = 0; x < *out_width; ++x) {
      logits[plane + y * *out_width + x] =
          image.chw[(y + shrink) * image.padded_width + x + shrink];
    }
  }
  return logits;
}

cv::Mat RandomImage(int rows, int cols) {
  cv::Mat image(rows, cols, CV_8UC1);
  cv::randu(image, 0, 256);
  return image;
}

class MaskAlignmentTest : public ::testing::TestWithParam<std::pair<int, int>> {
};

TEST_P(MaskAlignmentTest, MaskIsTheImagesSizeAndInPlace) {
  const auto [rows, cols] = GetParam();
  const cv::Mat image = RandomImage(rows, cols);
  const auto prepared =
      Preprocess(image, DefaultModelConfig(1, 2, {2, 4, 8, 16, 32}));
  ASSERT_TRUE(prepared.ok());
  // Unpadded convolutions (shrink by the margin) and retain_dim (no shrink).
  for (int shrink : {ContextMargin(kLevels), 0}) {
    int out_height = 0, out_width = 0;
    const std::vector<float> logits =
        PassThroughLogits(*prepared, shrink, &out_height, &out_width);
    const auto result = ExtractSegmentation(logits.data(), 2, out_height,
                                            out_width, *prepared, false);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->mask.rows, rows);
    ASSERT_EQ(result->mask.cols, cols);
    cv::Mat expected = image > 127;  // 255 where the value exceeds 0.5
    expected /= 255;
    EXPECT_EQ(cv::countNonZero(result->mask != expected), 0)
        << "shrink " << shrink;
    EXPECT_TRUE(result->probabilities.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, MaskAlignmentTest,
                         ::testing::Values(std::make_pair(333, 517),
                                           std::make_pair(1, 1),
                                           std::make_pair(512, 512),
                                           std::make_pair(17, 3)));

TEST(ExtractSegmentationTest, ProbabilitiesAreTheSoftMax) {
  PreparedImage image;
  image.height = image.width = 1;
  image.padded_height = image.padded_width = 1;
  const float logits[3] = {1.0f, 2.0f, 3.0f};  // three classes, one pixel
  const auto result = ExtractSegmentation(logits, 3, 1, 1, image, true);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->mask.at<uint8_t>(0, 0), 2);
  const double sum = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  ASSERT_EQ(result->probabilities.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(result->probabilities[c], std::exp(c + 1.0) / sum, 1e-6);
  }
}

TEST(ExtractSegmentationTest, RefusesAnOutputThatDoesNotCoverTheImage) {
  PreparedImage image;
  image.height = image.width = 10;
  image.padded_height = image.padded_width = 10;
  const std::vector<float> logits(2 * 8 * 8);
  EXPECT_EQ(
      ExtractSegmentation(logits.data(), 2, 8, 8, image, false).status().code(),
      absl::StatusCode::kInternal);
}

TEST(EncodeMaskTest, PngAndRawRoundTrip) {
  cv::Mat mask(5, 7, CV_8UC1);
  cv::randu(mask, 0, 3);
  const auto png = EncodeMask(mask, segmentation::v1::PNG);
  ASSERT_TRUE(png.ok());
  const cv::Mat decoded = cv::imdecode(
      cv::Mat(1, png->size(), CV_8U, const_cast<char*>(png->data())),
      cv::IMREAD_UNCHANGED);
  EXPECT_EQ(cv::countNonZero(decoded != mask), 0);
  const auto raw = EncodeMask(mask, segmentation::v1::RAW);
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->size(), 35u);
  EXPECT_EQ(static_cast<uint8_t>((*raw)[8]), mask.at<uint8_t>(1, 1));
}

}  // namespace
}  // namespace unet
