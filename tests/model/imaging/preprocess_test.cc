#include "model/imaging/preprocess.h"

#include "gtest/gtest.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

ModelConfig SeedConfig(int input_channels = 1) {
  return DefaultModelConfig(input_channels, 2, {2, 4, 8, 16, 32});
}

class PreprocessSizeTest
    : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(PreprocessSizeTest, PadsToAValidSizeWithFullContext) {
  const auto [height, width] = GetParam();
  const cv::Mat image(height, width, CV_8UC1, cv::Scalar(7));
  const auto prepared = Preprocess(image, SeedConfig());
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->height, height);
  EXPECT_EQ(prepared->width, width);
  EXPECT_TRUE(OutputSide(prepared->padded_height, 5).ok());
  EXPECT_TRUE(OutputSide(prepared->padded_width, 5).ok());
  // Every image pixel has 92 pixels of context on each side, and the network
  // output covers the whole image.
  EXPECT_EQ(prepared->pad_top, 92);
  EXPECT_GE(prepared->padded_height - prepared->pad_top - height, 92);
  EXPECT_GE(prepared->padded_width - prepared->pad_left - width, 92);
  // The smallest such size: one step less would not fit.
  EXPECT_LT(prepared->padded_height - 16, height + 2 * 92);
  EXPECT_EQ(prepared->chw.size(), static_cast<size_t>(prepared->padded_height) *
                                      prepared->padded_width);
}

INSTANTIATE_TEST_SUITE_P(Sizes, PreprocessSizeTest,
                         ::testing::Values(std::make_pair(333, 517),
                                           std::make_pair(1, 1),
                                           std::make_pair(512, 512),
                                           std::make_pair(388, 388),
                                           std::make_pair(2, 1000)));

TEST(PreprocessTest, NormalisesByPixelTypeThenMeanAndStd) {
  ModelConfig config = SeedConfig();
  config.mutable_normalization()->set_mean(0, 0.5f);
  config.mutable_normalization()->set_std(0, 0.25f);
  const auto u8 = Preprocess(cv::Mat(1, 1, CV_8UC1, cv::Scalar(255)), config);
  ASSERT_TRUE(u8.ok());
  EXPECT_FLOAT_EQ(u8->chw[0], 2.0f);  // (1 - 0.5) / 0.25
  const auto u16 = Preprocess(cv::Mat(1, 1, CV_16UC1, cv::Scalar(0)), config);
  ASSERT_TRUE(u16.ok());
  EXPECT_FLOAT_EQ(u16->chw[0], -2.0f);
  const auto f32 =
      Preprocess(cv::Mat(1, 1, CV_32FC1, cv::Scalar(0.75)), config);
  ASSERT_TRUE(f32.ok());
  EXPECT_FLOAT_EQ(f32->chw[0], 1.0f);
}

TEST(PreprocessTest, MirrorsWithoutRepeatingTheEdge) {
  cv::Mat row = (cv::Mat_<uint8_t>(1, 4) << 0, 85, 170, 255);
  cv::Mat image;
  cv::repeat(row, 3, 1, image);
  const auto prepared = Preprocess(image, SeedConfig());
  ASSERT_TRUE(prepared.ok());
  const float* top_row =
      prepared->chw.data() + prepared->pad_top * prepared->padded_width;
  const int left = prepared->pad_left;
  EXPECT_FLOAT_EQ(top_row[left], 0.0f);
  EXPECT_FLOAT_EQ(top_row[left + 3], 1.0f);
  EXPECT_FLOAT_EQ(top_row[left - 1], 85 / 255.0f);   // mirrored about x = 0
  EXPECT_FLOAT_EQ(top_row[left + 4], 170 / 255.0f);  // mirrored about x = 3
}

TEST(PreprocessTest, LaysOutChannelsPlaneByPlane) {
  const cv::Mat rgb(2, 2, CV_8UC3, cv::Scalar(0, 51, 255));
  const auto prepared = Preprocess(rgb, SeedConfig(3));
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  const size_t plane =
      static_cast<size_t>(prepared->padded_height) * prepared->padded_width;
  EXPECT_FLOAT_EQ(prepared->chw[0], 0.0f);
  EXPECT_FLOAT_EQ(prepared->chw[plane], 0.2f);
  EXPECT_FLOAT_EQ(prepared->chw[2 * plane], 1.0f);
}

TEST(PreprocessTest, RejectsAChannelCountTheModelDoesNotTake) {
  const cv::Mat rgb(8, 8, CV_8UC3);
  EXPECT_EQ(Preprocess(rgb, SeedConfig(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  const cv::Mat gray(8, 8, CV_8UC1);
  EXPECT_EQ(Preprocess(gray, SeedConfig(3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
