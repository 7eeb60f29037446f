#include "model/imaging/preprocess.h"

#include <algorithm>
#include <vector>

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

// Every pixel of every window, against the mirrored image read pixel by
// pixel: windows inside the image, across its edges, and far wider than it
// (mirrored again), of 1 and 3 channels at each depth the decoders make.
TEST(PreprocessTest, WindowsAgreeWithTheMirroredImagePixelByPixel) {
  struct Window {
    int top, left, height, width;
  };
  const std::vector<Window> windows = {{0, 0, 4, 4},  {-3, -2, 12, 9},
                                       {5, 6, 6, 9},  {-20, -30, 60, 70},
                                       {9, 12, 8, 5}, {-1, 10, 3, 40}};
  for (int channels : {1, 3}) {
    for (int depth : {CV_8U, CV_16U, CV_32F}) {
      cv::Mat image(11, 17, CV_MAKETYPE(depth, channels));
      cv::randu(image, 0, depth == CV_32F ? 1 : depth == CV_8U ? 256 : 65536);
      ModelConfig config = SeedConfig(channels);
      for (float mean : {0.1f, 0.2f, 0.3f}) {
        config.mutable_normalization()->add_mean(mean);
      }
      for (float std : {0.5f, 2.0f, 4.0f}) {
        config.mutable_normalization()->add_std(std);
      }
      if (channels == 1) {
        config.mutable_normalization()->mutable_mean()->Truncate(1);
        config.mutable_normalization()->mutable_std()->Truncate(1);
      }
      const double unit = depth == CV_8U    ? 1 / 255.0
                          : depth == CV_16U ? 1 / 65535.0
                                            : 1.0;
      for (const Window& w : windows) {
        InputWindow window;
        window.input_top = w.top;
        window.input_left = w.left;
        window.input_height = w.height;
        window.input_width = w.width;
        window.written_top = std::max(w.top, 0);
        window.written_left = std::max(w.left, 0);
        window.written_height = 1;
        window.written_width = 1;
        const auto prepared = PrepareWindow(image, config, window);
        ASSERT_TRUE(prepared.ok()) << prepared.status();
        ASSERT_EQ(prepared->chw.size(),
                  size_t{1} * channels * w.height * w.width);
        cv::Mat planes[3];
        cv::Mat as_double;
        image.convertTo(as_double, CV_64F);
        cv::split(as_double, planes);
        for (int c = 0; c < channels; ++c) {
          const double mean = config.normalization().mean(c);
          const double std = config.normalization().std(c);
          for (int y = 0; y < w.height; ++y) {
            for (int x = 0; x < w.width; ++x) {
              const int row = cv::borderInterpolate(w.top + y, image.rows,
                                                    cv::BORDER_REFLECT_101);
              const int column = cv::borderInterpolate(w.left + x, image.cols,
                                                       cv::BORDER_REFLECT_101);
              const double value = planes[c].at<double>(row, column);
              ASSERT_NEAR(
                  prepared->chw[(size_t{1} * c * w.height + y) * w.width + x],
                  (value * unit - mean) / std, 1e-5)
                  << "channels " << channels << " depth " << depth << " window "
                  << w.top << "," << w.left << " at " << y << "," << x;
            }
          }
        }
      }
    }
  }
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
