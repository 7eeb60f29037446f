#include "model/imaging/mask_png.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"

namespace unet {
namespace {

cv::Mat Decode(const std::string& png) {
  return cv::imdecode(cv::Mat(1, static_cast<int>(png.size()), CV_8U,
                              const_cast<char*>(png.data())),
                      cv::IMREAD_UNCHANGED);
}

// What libpng (through OpenCV) reads back is the mask, at every size and
// content: runs of labels, noise, one pixel, a strided view.
TEST(MaskPngTest, DecodesToTheSamePixels) {
  cv::Mat runs(512, 512, CV_8UC1, cv::Scalar(0));
  cv::circle(runs, {200, 300}, 120, cv::Scalar(1), -1);
  cv::rectangle(runs, {10, 10}, {90, 400}, cv::Scalar(2), -1);
  cv::Mat noise(37, 1001, CV_8UC1);
  cv::randu(noise, 0, 256);
  const cv::Mat one(1, 1, CV_8UC1, cv::Scalar(7));
  const cv::Mat view = noise(cv::Rect(3, 2, 50, 30));  // not continuous
  for (const cv::Mat& mask : {runs, noise, one, view}) {
    absl::StatusOr<std::string> png = EncodeMaskPng(mask);
    ASSERT_TRUE(png.ok()) << png.status();
    const cv::Mat decoded = Decode(*png);
    ASSERT_EQ(decoded.type(), CV_8UC1);
    ASSERT_EQ(decoded.size(), mask.size());
    EXPECT_EQ(cv::norm(decoded, mask, cv::NORM_INF), 0);
  }
}

TEST(MaskPngTest, AMaskOfRunsCompressesAsOpenCvDoes) {
  cv::Mat runs(512, 512, CV_8UC1, cv::Scalar(0));
  cv::circle(runs, {256, 256}, 200, cv::Scalar(1), -1);
  std::vector<uint8_t> opencv;
  cv::imencode(".png", runs, opencv);
  absl::StatusOr<std::string> png = EncodeMaskPng(runs);
  ASSERT_TRUE(png.ok());
  EXPECT_LT(png->size(), 2 * opencv.size());
}

TEST(MaskPngTest, RefusesWhatIsNotAnEightBitMask) {
  EXPECT_EQ(EncodeMaskPng(cv::Mat(4, 4, CV_16UC1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeMaskPng(cv::Mat(4, 4, CV_8UC3)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeMaskPng(cv::Mat()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
