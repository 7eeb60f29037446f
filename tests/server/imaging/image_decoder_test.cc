#include "server/imaging/image_decoder.h"

#include <opencv2/imgcodecs.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace unet {
namespace {

using segmentation::v1::Image;
using ::testing::HasSubstr;

constexpr int64_t kMaxPixels = 1 << 22;

Image Encoded(const cv::Mat& pixels, const std::string& extension) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(extension, pixels, bytes));
  Image image;
  image.set_encoded(std::string(bytes.begin(), bytes.end()));
  return image;
}

Image Raw(int width, int height, int channels, segmentation::v1::PixelType type,
          size_t bytes) {
  Image image;
  auto* raw = image.mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_channels(channels);
  raw->set_pixel_type(type);
  raw->set_data(std::string(bytes, '\x01'));
  return image;
}

cv::Mat Gradient(int rows, int cols, int type) {
  cv::Mat m(rows, cols, type);
  cv::randu(m, 0, CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255);
  return m;
}

absl::StatusCode CodeOf(const Image& image, int64_t max_pixels = kMaxPixels) {
  return DecodeImage(image, max_pixels).status().code();
}

TEST(ImageDecoderTest, DecodesEveryLosslessFormatExactly) {
  const cv::Mat gray8 = Gradient(33, 51, CV_8UC1);
  for (const char* ext : {".png", ".tif", ".bmp", ".pgm"}) {
    const auto decoded = DecodeImage(Encoded(gray8, ext), kMaxPixels);
    ASSERT_TRUE(decoded.ok()) << ext << ": " << decoded.status();
    EXPECT_EQ(cv::norm(*decoded, gray8, cv::NORM_INF), 0) << ext;
  }
}

TEST(ImageDecoderTest, Keeps16BitDepth) {
  const cv::Mat gray16 = Gradient(20, 30, CV_16UC1);
  for (const char* ext : {".png", ".tif"}) {
    const auto decoded = DecodeImage(Encoded(gray16, ext), kMaxPixels);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->type(), CV_16UC1);
    EXPECT_EQ(cv::norm(*decoded, gray16, cv::NORM_INF), 0);
  }
}

TEST(ImageDecoderTest, DecodesJpegWithItsLoss) {
  const cv::Mat flat(64, 48, CV_8UC1, cv::Scalar(100));
  const auto decoded = DecodeImage(Encoded(flat, ".jpg"), kMaxPixels);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->size(), flat.size());
  EXPECT_EQ(decoded->channels(), 1);
  EXPECT_LE(cv::norm(*decoded, flat, cv::NORM_INF), 2);
}

TEST(ImageDecoderTest, ColourComesOutAsRgb) {
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(10, 20, 30));  // B, G, R
  const auto decoded = DecodeImage(Encoded(bgr, ".png"), kMaxPixels);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));
}

TEST(ImageDecoderTest, DecodesRawPixelsOfEveryType) {
  const auto u8 = DecodeImage(
      Raw(3, 2, 1, segmentation::v1::PIXEL_TYPE_UINT8, 6), kMaxPixels);
  ASSERT_TRUE(u8.ok()) << u8.status();
  EXPECT_EQ(u8->type(), CV_8UC1);
  EXPECT_EQ(u8->cols, 3);
  EXPECT_EQ(u8->rows, 2);
  const auto u16 = DecodeImage(
      Raw(3, 2, 2, segmentation::v1::PIXEL_TYPE_UINT16, 24), kMaxPixels);
  ASSERT_TRUE(u16.ok()) << u16.status();
  EXPECT_EQ(u16->type(), CV_16UC2);
  EXPECT_EQ(u16->at<cv::Vec2w>(1, 2)[1], 0x0101);
  const auto f32 = DecodeImage(
      Raw(1, 1, 1, segmentation::v1::PIXEL_TYPE_FLOAT32, 4), kMaxPixels);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ(f32->type(), CV_32FC1);
}

TEST(ImageDecoderTest, RejectsEmptyAndUndecodableBytes) {
  Image empty;
  empty.set_encoded("");
  EXPECT_EQ(CodeOf(empty), absl::StatusCode::kInvalidArgument);
  Image garbage;
  garbage.set_encoded("this is not an image at all");
  EXPECT_EQ(CodeOf(garbage), absl::StatusCode::kInvalidArgument);
  Image truncated = Encoded(Gradient(64, 64, CV_8UC1), ".png");
  truncated.set_encoded(truncated.encoded().substr(0, 60));
  EXPECT_EQ(CodeOf(truncated), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Image()), absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecoderTest, RejectsRawDataOfTheWrongSize) {
  const auto status = DecodeImage(
      Raw(10, 10, 1, segmentation::v1::PIXEL_TYPE_UINT16, 100), kMaxPixels);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.status().message(), HasSubstr("200"));
}

TEST(ImageDecoderTest, RejectsBadRawHeaders) {
  using segmentation::v1::PIXEL_TYPE_UINT8;
  EXPECT_EQ(CodeOf(Raw(0, 10, 1, PIXEL_TYPE_UINT8, 0)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Raw(2, 2, 0, PIXEL_TYPE_UINT8, 0)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Raw(2, 2, 5, PIXEL_TYPE_UINT8, 20)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Raw(2, 2, 1, segmentation::v1::PIXEL_TYPE_UNSPECIFIED, 4)),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecoderTest, RejectsTooManyPixels) {
  EXPECT_EQ(CodeOf(Raw(101, 100, 1, segmentation::v1::PIXEL_TYPE_UINT8, 10100),
                   10000),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Encoded(Gradient(101, 100, CV_8UC1), ".png"), 10000),
            absl::StatusCode::kInvalidArgument);
  // Small files whose headers declare huge images ("decompression bombs")
  // are refused from the header, before OpenCV allocates anything.
  for (const char* ext : {".png", ".bmp", ".jpg", ".tif"}) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(ext, Gradient(4, 4, CV_8UC1), bytes));
    Image image;
    image.set_encoded(std::string(bytes.begin(), bytes.end()));
    const auto small = DecodeImage(image, 16);
    EXPECT_TRUE(small.ok()) << ext << ": " << small.status();
    const auto refused = DecodeImage(image, 15);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
        << ext;
    EXPECT_THAT(refused.status().message(), HasSubstr("declares 16 pixels"))
        << ext;
  }
  // A PNG whose header claims 100000 x 100000 pixels.
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", Gradient(4, 4, CV_8UC1), png));
  for (int i : {16, 20}) {  // IHDR width and height, big-endian
    png[i] = 0x00, png[i + 1] = 0x01, png[i + 2] = 0x86, png[i + 3] = 0xA0;
  }
  Image bomb;
  bomb.set_encoded(std::string(png.begin(), png.end()));
  EXPECT_THAT(DecodeImage(bomb, kMaxPixels).status().message(),
              HasSubstr("declares 10000000000 pixels"));
  // A big-endian TIFF of 8 + 2 + 2 * 12 bytes: width and height 100000
  // (LONG), no pixel data at all.
  const std::string tiff(
      "MM\0*\0\0\0\x08\0\x02"
      "\x01\x00\0\x04\0\0\0\x01\0\x01\x86\xA0"
      "\x01\x01\0\x04\0\0\0\x01\0\x01\x86\xA0",
      34);
  bomb.set_encoded(tiff);
  EXPECT_THAT(DecodeImage(bomb, kMaxPixels).status().message(),
              HasSubstr("declares 10000000000 pixels"));
  // A header that claims 4 billion pixels is refused before any allocation.
  EXPECT_EQ(CodeOf(Raw(65536, 65536, 1, segmentation::v1::PIXEL_TYPE_UINT8, 1)),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
