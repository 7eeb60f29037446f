#include "server/imaging/image_decoder.h"

#include <cstdio>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/imaging/opencv_limits.h"
#include "tests/hostile_images.h"

namespace unet {
namespace {

using segmentation::v1::Image;
using ::testing::HasSubstr;
using namespace std::string_literals;

constexpr int64_t kMaxPixels = 1 << 22;
// The limits this test binary runs under, OpenCV's included (see main).
constexpr DecodeLimits kLimits{kMaxPixels, 8192};

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

DecodeLimits WithMaxPixels(int64_t max_pixels) {
  return {max_pixels, kLimits.max_side};
}

absl::StatusCode CodeOf(const Image& image, int64_t max_pixels = kMaxPixels) {
  return DecodeImage(image, WithMaxPixels(max_pixels)).status().code();
}

Image EncodedBytes(std::string bytes) {
  Image image;
  image.set_encoded(std::move(bytes));
  return image;
}

std::string PngBytes(const cv::Mat& pixels) {
  return Encoded(pixels, ".png").encoded();
}

TEST(ImageDecoderTest, DecodesEveryLosslessFormatExactly) {
  const cv::Mat gray8 = Gradient(33, 51, CV_8UC1);
  for (const char* ext : {".png", ".tif", ".bmp"}) {
    const auto decoded = DecodeImage(Encoded(gray8, ext), kLimits);
    ASSERT_TRUE(decoded.ok()) << ext << ": " << decoded.status();
    EXPECT_EQ(cv::norm(*decoded, gray8, cv::NORM_INF), 0) << ext;
  }
}

TEST(ImageDecoderTest, Keeps16BitDepth) {
  const cv::Mat gray16 = Gradient(20, 30, CV_16UC1);
  for (const char* ext : {".png", ".tif"}) {
    const auto decoded = DecodeImage(Encoded(gray16, ext), kLimits);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->type(), CV_16UC1);
    EXPECT_EQ(cv::norm(*decoded, gray16, cv::NORM_INF), 0);
  }
}

TEST(ImageDecoderTest, DecodesJpegWithItsLoss) {
  const cv::Mat flat(64, 48, CV_8UC1, cv::Scalar(100));
  const auto decoded = DecodeImage(Encoded(flat, ".jpg"), kLimits);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->size(), flat.size());
  EXPECT_EQ(decoded->channels(), 1);
  EXPECT_LE(cv::norm(*decoded, flat, cv::NORM_INF), 2);
}

TEST(ImageDecoderTest, ColourComesOutAsRgb) {
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(10, 20, 30));  // B, G, R
  const auto decoded = DecodeImage(Encoded(bgr, ".png"), kLimits);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));
}

TEST(ImageDecoderTest, DecodesRawPixelsOfEveryType) {
  const auto u8 =
      DecodeImage(Raw(3, 2, 1, segmentation::v1::PIXEL_TYPE_UINT8, 6), kLimits);
  ASSERT_TRUE(u8.ok()) << u8.status();
  EXPECT_EQ(u8->type(), CV_8UC1);
  EXPECT_EQ(u8->cols, 3);
  EXPECT_EQ(u8->rows, 2);
  const auto u16 = DecodeImage(
      Raw(3, 2, 2, segmentation::v1::PIXEL_TYPE_UINT16, 24), kLimits);
  ASSERT_TRUE(u16.ok()) << u16.status();
  EXPECT_EQ(u16->type(), CV_16UC2);
  EXPECT_EQ(u16->at<cv::Vec2w>(1, 2)[1], 0x0101);
  const auto f32 = DecodeImage(
      Raw(1, 1, 1, segmentation::v1::PIXEL_TYPE_FLOAT32, 4), kLimits);
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
      Raw(10, 10, 1, segmentation::v1::PIXEL_TYPE_UINT16, 100), kLimits);
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

TEST(ImageDecoderTest, RejectsTooManyPixelsAndTooLongSides) {
  EXPECT_EQ(CodeOf(Raw(101, 100, 1, segmentation::v1::PIXEL_TYPE_UINT8, 10100),
                   10000),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(Encoded(Gradient(101, 100, CV_8UC1), ".png"), 10000),
            absl::StatusCode::kInvalidArgument);
  const auto thin = DecodeImage(
      Raw(8193, 1, 1, segmentation::v1::PIXEL_TYPE_UINT8, 8193), kLimits);
  EXPECT_EQ(thin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(thin.status().message(), HasSubstr("8192 pixels per side"));
}

TEST(ImageDecoderTest, RawHeadersThatOverflowAreRefusedBeforeAnyProduct) {
  // 2^32-1 squared overflows int64; times 16 bytes a pixel, again.
  const auto huge = DecodeImage(
      Raw(0xFFFFFFFF, 0xFFFFFFFF, 4, segmentation::v1::PIXEL_TYPE_FLOAT32, 1),
      kLimits);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), HasSubstr("per side"));
  EXPECT_EQ(CodeOf(Raw(65536, 65536, 1, segmentation::v1::PIXEL_TYPE_UINT8, 1)),
            absl::StatusCode::kInvalidArgument);
}

// OpenCV reads its limits only at start-up; main() starts this binary again
// with them, as the server does.
TEST(ImageDecoderTest, OpenCvsOwnLimitsAreInForce) {
  EXPECT_TRUE(OpenCvLimitsInForce(kLimits));
}

// Small files whose headers declare huge images ("decompression bombs") are
// refused by OpenCV from the header, before it allocates the pixels: the
// message is the one for OpenCV's refusal; no header parser of ours is left.
TEST(ImageDecoderTest, OpenCvRefusesBombsFromTheHeader) {
  // A PNG whose IHDR claims 100000 x 100000.
  const std::string png = testing::PngClaiming(100000, 100000);
  auto refused = DecodeImage(EncodedBytes(png), kLimits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("PNG header declares an image larger"));
  // A real 4 KB PNG of zeros just over the pixel limit, sides within it.
  const std::string zeros = PngBytes(cv::Mat::zeros(1025, 4096, CV_8UC1));
  ASSERT_LT(zeros.size(), 64u << 10);
  refused = DecodeImage(EncodedBytes(zeros), kLimits);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("PNG header declares an image larger"));
  // A big-endian TIFF of 8 + 2 + 2 * 12 bytes: width and height 100000
  // (LONG), no pixel data at all.
  const std::string tiff(
      "MM\0*\0\0\0\x08\0\x02"
      "\x01\x00\0\x04\0\0\0\x01\0\x01\x86\xA0"
      "\x01\x01\0\x04\0\0\0\x01\0\x01\x86\xA0",
      34);
  EXPECT_EQ(CodeOf(EncodedBytes(tiff)), absl::StatusCode::kInvalidArgument);
  // A JPEG whose frame header claims 60000 x 60000, behind a legal 0xFF
  // fill byte that a hand-written segment walk missed.
  const std::string jpeg = Encoded(Gradient(8, 8, CV_8UC1), ".jpg").encoded();
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  std::string bomb = jpeg.substr(0, sof) + "\xFF" + jpeg.substr(sof);
  for (size_t at : {sof + 1 + 5, sof + 1 + 7}) {  // height, width
    bomb[at] = char(0xEA), bomb[at + 1] = char(0x60);
  }
  refused = DecodeImage(EncodedBytes(bomb), kLimits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("JPEG header declares an image larger"));
}

TEST(ImageDecoderTest, SurvivesATiffWhoseDirectoryOffsetWraps) {
  // 8 bytes: a little-endian TIFF whose first directory sits near 2^32.
  const std::string tiff("II*\0\xF0\xFF\xFF\xFF", 8);
  EXPECT_EQ(CodeOf(EncodedBytes(tiff)), absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecoderTest, AcceptsOnlyTheAllowedFormatsAndNamesTheOthers) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"RIFF\x10\0\0\0WEBPVP8 "s, "WebP"},
      {std::string("\0\0\0\x0cjP  \r\n\x87\n", 12), "JPEG 2000"},
      {"\xFF\x4F\xFF\x51\0\x2f"s, "JPEG 2000"},
      {"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 9999 +X 9999\n",
       "Radiance HDR"},
      {"P5\n60000 60000\n255\n", "PxM/PFM"},
      {"PF\n60000 60000\n-1.0\n", "PxM/PFM"},
      {"\x59\xA6\x6A\x95\0\0\xEA\x60"s, "Sun raster"},
      {"\x76\x2F\x31\x01\x02\0\0\0"s, "OpenEXR"},
      {"GIF89a\x60\xEA\x60\xEA", "GIF"},
      {std::string(128, '\0') + "DICM", "DICOM"},
  };
  for (const auto& [bytes, name] : refused) {
    const auto decoded = DecodeImage(EncodedBytes(bytes), kLimits);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_THAT(decoded.status().message(),
                HasSubstr(absl::StrCat("format ", name, " is not accepted")));
  }
  const auto unknown = DecodeImage(EncodedBytes("\x00\x01garbage"s), kLimits);
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("not PNG, TIFF, JPEG, BMP or DICOM"));
  // A real PGM, which OpenCV would decode, is refused all the same.
  EXPECT_EQ(CodeOf(Encoded(Gradient(4, 4, CV_8UC1), ".pgm")),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecoderTest, SniffsTheAllowedFormats) {
  EXPECT_EQ(SniffImageFormat(PngBytes(Gradient(2, 2, CV_8UC1))),
            ImageFormat::kPng);
  EXPECT_EQ(
      SniffImageFormat(Encoded(Gradient(2, 2, CV_8UC1), ".tif").encoded()),
      ImageFormat::kTiff);
  EXPECT_EQ(
      SniffImageFormat(Encoded(Gradient(2, 2, CV_8UC1), ".jpg").encoded()),
      ImageFormat::kJpeg);
  EXPECT_EQ(
      SniffImageFormat(Encoded(Gradient(2, 2, CV_8UC1), ".bmp").encoded()),
      ImageFormat::kBmp);
  EXPECT_EQ(SniffImageFormat(std::string("II+\0", 4)), ImageFormat::kTiff);
  EXPECT_EQ(SniffImageFormat(""), ImageFormat::kUnknown);
}

}  // namespace
}  // namespace unet

int main(int argc, char** argv) {
  if (const absl::Status limits =
          unet::EnforceOpenCvLimits(unet::kLimits, argv);
      !limits.ok()) {
    std::fprintf(stderr, "%s\n", std::string(limits.message()).c_str());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
