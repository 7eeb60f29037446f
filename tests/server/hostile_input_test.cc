// End to end: the real segmentation_server, sent what a buggy modality
// gateway or a hostile client sends. Every case asserts the exact status
// code, that the process is still alive and serving afterwards, and that its
// log still holds exactly one well-formed line per event.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "tests/hostile_images.h"
#include "tests/server/server_process.h"

namespace unet {
namespace {

using segmentation::v1::PixelType;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;
using ::testing::HasSubstr;
using namespace std::string_literals;

// The server under test takes at most 1024 x 1024 pixels and 4096 per side;
// a pass may be at most what a 1024 x 1024 image pads to (1212 x 1212).
constexpr int kMaxPixels = 1024 * 1024;
constexpr int kMaxSide = 4096;

SegmentRequest Encoded(std::string bytes) {
  SegmentRequest request;
  request.set_request_id("hostile");
  request.mutable_image()->set_encoded(std::move(bytes));
  return request;
}

SegmentRequest Raw(uint32_t width, uint32_t height, uint32_t channels,
                   int pixel_type, size_t bytes) {
  SegmentRequest request;
  request.set_request_id("hostile");
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_channels(channels);
  raw->set_pixel_type(static_cast<PixelType>(pixel_type));
  raw->set_data(std::string(bytes, '\x40'));
  request.set_mask_encoding(segmentation::v1::RAW);
  return request;
}

// A small valid request, the same before and after each hostile one.
SegmentRequest Valid() {
  return Raw(24, 16, 1, segmentation::v1::PIXEL_TYPE_UINT8, 24 * 16);
}

std::string Png(const cv::Mat& pixels) {
  std::vector<uint8_t> bytes;
  cv::imencode(".png", pixels, bytes);
  return std::string(bytes.begin(), bytes.end());
}

std::string Jpeg(const cv::Mat& pixels) {
  std::vector<uint8_t> bytes;
  cv::imencode(".jpg", pixels, bytes);
  return std::string(bytes.begin(), bytes.end());
}

// A JPEG whose frame header claims 60000 x 60000, behind a legal 0xFF fill
// byte before the marker.
std::string JpegBombBehindFillByte() {
  const std::string jpeg = Jpeg(cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)));
  const size_t sof = jpeg.find("\xFF\xC0");
  std::string bomb = jpeg.substr(0, sof) + "\xFF" + jpeg.substr(sof);
  for (size_t at : {sof + 6, sof + 8}) {
    bomb[at] = char(0xEA), bomb[at + 1] = char(0x60);
  }
  return bomb;
}

// A BMP header claiming 100000 x 100000 8-bit pixels, and nothing else.
std::string BmpClaiming100000Squared() {
  std::string bmp = "BM"s + std::string(52, '\0');
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bmp[at + i] = char(v >> (8 * i));
  };
  put32(10, 54 + 1024);  // pixel data offset
  put32(14, 40);         // BITMAPINFOHEADER
  put32(18, 100000);     // width
  put32(22, 100000);     // height
  bmp[26] = 1;           // planes
  bmp[28] = 8;           // bits per pixel
  return bmp;
}

struct HostileCase {
  std::string name;
  std::function<SegmentRequest()> request;
  grpc::StatusCode code;
  std::string message;  // a part of the status message
};

std::ostream& operator<<(std::ostream& os, const HostileCase& c) {
  return os << c.name;
}

class HostileInputTest : public ::testing::TestWithParam<HostileCase> {
 protected:
  static void SetUpTestSuite() {
    calls_ = 0;
    auto server = testing::ServerProcess::Start(
        {"--model_root=" UNET_SOURCE_DIR "/model/repository", "--device=cpu",
         absl::StrCat("--max_pixels=", kMaxPixels),
         absl::StrCat("--max_side=", kMaxSide)},
        "hostile_server.log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static grpc::Status Send(const SegmentRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    SegmentResponse response;
    ++calls_;
    return Segmentation::NewStub(server_->channel())
        ->Segment(&context, request, &response);
  }

  static testing::ServerProcess* server_;
  static int calls_;  // Segment calls sent, each one log line
};

testing::ServerProcess* HostileInputTest::server_ = nullptr;
int HostileInputTest::calls_ = 0;

// One event per line: a timestamp, the event, then key=value pairs whose
// values are bare tokens or quoted with escapes; printable ASCII only.
void ExpectOneWellFormedLinePerEvent(const std::string& log,
                                     int segment_calls) {
  static const std::regex kLine(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z event=[a-z_]+)"
      R"(( [a-z_]+=([^\s"\\=]+|"([^"\\]|\\.)*"))*)");
  int segment_lines = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    for (char c : line) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7F) << "unescaped byte in: " << line;
    }
    EXPECT_TRUE(std::regex_match(std::string(line), kLine)) << line;
    segment_lines += absl::StrContains(line, " event=segment ");
  }
  EXPECT_EQ(segment_lines, segment_calls);
}

TEST_P(HostileInputTest, GetsItsExactStatusAndTheServerServesOn) {
  const HostileCase& c = GetParam();
  ASSERT_NE(server_, nullptr);
  const grpc::Status status = Send(c.request());
  EXPECT_EQ(status.error_code(), c.code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  EXPECT_EQ(kill(server_->pid(), 0), 0) << "the server died";
  const grpc::Status after = Send(Valid());
  EXPECT_TRUE(after.ok()) << after.error_message();
  ExpectOneWellFormedLinePerEvent(server_->log(), calls_);
}

SegmentRequest WithRequestId(std::string id) {
  SegmentRequest request = Valid();
  request.set_request_id(std::move(id));
  return request;
}

SegmentRequest WithModel(std::string model) {
  SegmentRequest request = Valid();
  request.set_model(std::move(model));
  return request;
}

SegmentRequest Edited(std::function<void(SegmentRequest&)> edit) {
  SegmentRequest request = Valid();
  edit(request);
  return request;
}

constexpr auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
using segmentation::v1::PIXEL_TYPE_FLOAT32;
using segmentation::v1::PIXEL_TYPE_UINT8;

INSTANTIATE_TEST_SUITE_P(
    Cases, HostileInputTest,
    ::testing::Values(
        // Encoded formats.
        HostileCase{"TiffWhoseDirectoryOffsetWraps",
                    [] { return Encoded("II*\0\xF0\xFF\xFF\xFF"s); }, kInvalid,
                    "cannot decode TIFF"},
        HostileCase{"TiffClaiming100000Squared",
                    [] {
                      return Encoded(
                          "MM\0*\0\0\0\x08\0\x02"
                          "\x01\x00\0\x04\0\0\0\x01\0\x01\x86\xA0"
                          "\x01\x01\0\x04\0\0\0\x01\0\x01\x86\xA0"s);
                    },
                    kInvalid, "TIFF"},
        HostileCase{
            "PngClaiming100000Squared",
            [] { return Encoded(testing::PngClaiming(100000, 100000)); },
            kInvalid, "PNG header declares an image larger"},
        HostileCase{
            "SmallPngOfZerosOverThePixelLimit",
            [] { return Encoded(Png(cv::Mat::zeros(1025, 1024, CV_8UC1))); },
            kInvalid, "PNG header declares an image larger"},
        HostileCase{"JpegBombBehindAFillByte",
                    [] { return Encoded(JpegBombBehindFillByte()); }, kInvalid,
                    "JPEG header declares an image larger"},
        HostileCase{"BmpClaiming100000Squared",
                    [] { return Encoded(BmpClaiming100000Squared()); },
                    kInvalid, "BMP"},
        HostileCase{
            "TruncatedPng",
            [] {
              return Encoded(
                  Png(cv::Mat(64, 64, CV_8UC1, cv::Scalar(3))).substr(0, 70));
            },
            // The IDAT after the 33 bytes of signature and IHDR.
            kInvalid, "PNG chunk at byte 33 declares"},
        HostileCase{"WebP", [] { return Encoded("RIFF\x10\0\0\0WEBPVP8 "s); },
                    kInvalid, "WebP is not accepted"},
        HostileCase{"Jpeg2000",
                    [] { return Encoded("\0\0\0\x0cjP  \r\n\x87\n"s); },
                    kInvalid, "JPEG 2000 is not accepted"},
        HostileCase{"RadianceHdr",
                    [] { return Encoded("#?RADIANCE\n\n-Y 60000 +X 60000\n"); },
                    kInvalid, "Radiance HDR is not accepted"},
        HostileCase{"PgmClaiming60000Squared",
                    [] { return Encoded("P5\n60000 60000\n255\n"); }, kInvalid,
                    "PxM/PFM is not accepted"},
        HostileCase{"Pfm", [] { return Encoded("PF\n60000 60000\n-1.0\n"); },
                    kInvalid, "PxM/PFM is not accepted"},
        HostileCase{"SunRaster",
                    [] { return Encoded("\x59\xA6\x6A\x95\0\0\xEA\x60"s); },
                    kInvalid, "Sun raster is not accepted"},
        HostileCase{"DicomSignatureAlone",
                    [] { return Encoded(std::string(128, '\0') + "DICM"); },
                    kInvalid, "the DICOM file cannot be read"},
        // Pixel data declaring 4 GB in a file of 180 bytes: refused without
        // the allocation DCMTK would make for it (dicom_decoder.cc).
        HostileCase{"DicomDeclaringFourGigabytes",
                    [] {
                      return Encoded(std::string(128, '\0') + "DICM" +
                                     "\x02\x00\x10\x00UI\x14\x00"s +
                                     "1.2.840.10008.1.2.1\0"s +
                                     "\xe0\x7f\x10\x00OW\0\0\xf0\xff\xff\xff"s +
                                     std::string(16, '\x01'));
                    },
                    kInvalid, "DICOM"},
        HostileCase{"UnknownBytes", [] { return Encoded("\x01\x02\x03"s); },
                    kInvalid, "not PNG, TIFF, JPEG, BMP or DICOM"},
        HostileCase{"EmptyBytes", [] { return Encoded(""); }, kInvalid,
                    "empty"},
        // Raw headers.
        HostileCase{"RawSidesThatOverflowInt64",
                    [] {
                      return Raw(0xFFFFFFFF, 0xFFFFFFFF, 4, PIXEL_TYPE_FLOAT32,
                                 16);
                    },
                    kInvalid, "per side"},
        HostileCase{"RawZeroWidth",
                    [] { return Raw(0, 16, 1, PIXEL_TYPE_UINT8, 0); }, kInvalid,
                    "no pixels"},
        HostileCase{"RawFiveChannels",
                    [] { return Raw(4, 4, 5, PIXEL_TYPE_UINT8, 80); }, kInvalid,
                    "channels"},
        HostileCase{"RawUnknownPixelType", [] { return Raw(4, 4, 1, 99, 16); },
                    kInvalid, "pixel_type"},
        HostileCase{"RawDataShorterThanItsHeader",
                    [] { return Raw(64, 64, 1, PIXEL_TYPE_UINT8, 4000); },
                    kInvalid, "4096"},
        HostileCase{"RawChannelsTheModelDoesNotTake",
                    [] { return Raw(8, 8, 3, PIXEL_TYPE_UINT8, 192); },
                    kInvalid, "the model takes 1"},
        // Sizes.
        HostileCase{"SideOverMaxSide",
                    [] {
                      return Raw(kMaxSide + 1, 1, 1, PIXEL_TYPE_UINT8,
                                 kMaxSide + 1);
                    },
                    kInvalid, "4096 pixels per side"},
        // Padded whole, it would exceed the pass budget: it is tiled.
        HostileCase{"ThinImageThatPadsPastThePassBudget",
                    [] {
                      return Raw(kMaxSide, 200, 1, PIXEL_TYPE_UINT8,
                                 kMaxSide * 200);
                    },
                    grpc::StatusCode::OK, ""},
        // Strings: escaped in the log, capped, never a forged line.
        HostileCase{"RequestIdThatForgesALogLine",
                    [] {
                      return WithRequestId(
                          "x\n2026-01-01T00:00:00.000Z event=segment code=OK");
                    },
                    grpc::StatusCode::OK, ""},
        HostileCase{"RequestIdWithControlBytesAndQuotes",
                    [] {
                      // NEL and U+2028 in UTF-8: line breaks to some readers.
                      return WithRequestId(
                          "a\"b\\c\r\t\x1b[31m\xc2\x85\xe2\x80\xa8");
                    },
                    grpc::StatusCode::OK, ""},
        HostileCase{"RequestIdOf10Kilobytes",
                    [] { return WithRequestId(std::string(10000, 'i')); },
                    kInvalid, "at most 256 bytes"},
        HostileCase{"UnknownModelThatForgesALogLine",
                    [] { return WithModel("nope\n2026 event=model_loaded"); },
                    grpc::StatusCode::NOT_FOUND, "no model named"},
        // Enums and numbers.
        HostileCase{"UnknownResizeMode",
                    [] {
                      return Edited([](SegmentRequest& r) {
                        r.set_resize_mode(
                            static_cast<SegmentRequest::ResizeMode>(7));
                      });
                    },
                    kInvalid, "resize_mode"},
        HostileCase{"UnknownPriority",
                    [] {
                      return Edited([](SegmentRequest& r) {
                        r.set_priority(
                            static_cast<SegmentRequest::Priority>(-3));
                      });
                    },
                    kInvalid, "priority"},
        HostileCase{"UnknownMaskEncoding",
                    [] {
                      return Edited([](SegmentRequest& r) {
                        r.set_mask_encoding(
                            static_cast<segmentation::v1::MaskEncoding>(5));
                      });
                    },
                    kInvalid, "mask_encoding"},
        HostileCase{"NegativeModelVersion",
                    [] {
                      return Edited(
                          [](SegmentRequest& r) { r.set_model_version(-1); });
                    },
                    kInvalid, "negative"},
        HostileCase{"VersionThatDoesNotExist",
                    [] {
                      return Edited([](SegmentRequest& r) {
                        r.set_model_version(int64_t{1} << 62);
                      });
                    },
                    grpc::StatusCode::NOT_FOUND, "no loaded version"},
        HostileCase{
            "NoImage",
            [] { return Edited([](SegmentRequest& r) { r.clear_image(); }); },
            kInvalid, "no image"}),
    [](const ::testing::TestParamInfo<HostileCase>& info) {
      return info.param.name;
    });

// What the log shows of a forged request_id: the whole value on its own
// line's field, escaped.
TEST_F(HostileInputTest, ForgedLinesAreEscapedIntoTheirField) {
  ASSERT_NE(server_, nullptr);
  ASSERT_TRUE(Send(WithRequestId("evil\nevent=fake")).ok());
  EXPECT_THAT(server_->log(), HasSubstr("request_id=\"evil\\nevent=fake\""));
}

// A proto3 string field must hold UTF-8: gRPC's generated code refuses the
// message before it reaches the service (with UNIMPLEMENTED, gRPC's answer
// to a request it cannot parse), so no handler runs and nothing is logged.
TEST_F(HostileInputTest, InvalidUtf8InAStringFieldIsRefusedByGrpc) {
  ASSERT_NE(server_, nullptr);
  const grpc::Status status = Send(WithRequestId("\xff\xfe\n"));
  --calls_;  // never reaches the handler
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << status.error_message();
  EXPECT_EQ(kill(server_->pid(), 0), 0) << "the server died";
  EXPECT_TRUE(Send(Valid()).ok());
  ExpectOneWellFormedLinePerEvent(server_->log(), calls_);
}

}  // namespace
}  // namespace unet
