#include "server/imaging/dicom_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <numeric>
#include <random>

#include "absl/strings/ascii.h"
#include "tests/server/imaging/dicom_fixtures.h"

namespace unet {
namespace {

using segmentation::v1::DicomInput;
using testing::DicomEncoding;
using testing::DicomSpec;
using ::testing::HasSubstr;
using testing::MakeDicom;
using ::testing::Not;

// A CT-like slice: stored 0..4095 over 16 x 12 pixels, intercept -1024, so
// Hounsfield units -1024..3071.
DicomSpec CtSlice(DicomEncoding encoding = DicomEncoding::kExplicitLittle) {
  DicomSpec spec;
  spec.rows = 12;
  spec.columns = 16;
  spec.is_signed = true;
  spec.intercept = -1024;
  spec.encoding = encoding;
  for (int i = 0; i < spec.rows * spec.columns; ++i) {
    spec.values.push_back(i * 4095 / (spec.rows * spec.columns - 1));
  }
  return spec;
}

DicomInput SoftTissueWindow() {  // centre 40 HU, width 400 HU
  DicomInput mapping;
  mapping.mutable_window()->set_center(40);
  mapping.mutable_window()->set_width(400);
  return mapping;
}

float Expected(double hounsfield) {  // what the window maps a value to
  return static_cast<float>(std::clamp((hounsfield + 160) / 400, 0.0, 1.0));
}

TEST(DicomDecoderTest, AppliesTheRescaleThenTheModelsWindow) {
  const DicomSpec spec = CtSlice();
  auto frames = DecodeDicom(MakeDicom(spec), {}, SoftTissueWindow());
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->frames.size(), 1u);
  const cv::Mat& frame = frames->frames.front();
  ASSERT_EQ(frame.type(), CV_32F);
  ASSERT_EQ(frame.size(), cv::Size(16, 12));
  for (int i = 0; i < spec.rows * spec.columns; ++i) {
    EXPECT_NEAR(frame.at<float>(i / 16, i % 16),
                Expected(spec.values[i] - 1024.0), 1e-6)
        << "pixel " << i;
  }
}

TEST(DicomDecoderTest, EveryTransferSyntaxGivesTheSameIntensities) {
  const auto reference =
      DecodeDicom(MakeDicom(CtSlice()), {}, SoftTissueWindow());
  ASSERT_TRUE(reference.ok());
  const std::vector<std::pair<DicomEncoding, std::string>> syntaxes = {
      {DicomEncoding::kImplicitLittle, "1.2.840.10008.1.2"},
      {DicomEncoding::kDeflated, "1.2.840.10008.1.2.1.99"},
      {DicomEncoding::kRle, "1.2.840.10008.1.2.5"},
      {DicomEncoding::kJpegLsLossless, "1.2.840.10008.1.2.4.80"},
      {DicomEncoding::kJpegLossless, "1.2.840.10008.1.2.4.70"}};
  for (const auto& [encoding, uid] : syntaxes) {
    const std::string bytes = MakeDicom(CtSlice(encoding));
    // The file really is in that syntax: its meta header names it (a UID
    // is followed by a pad byte or the next element's tag, never a digit).
    const size_t at = bytes.find(uid);
    ASSERT_NE(at, std::string::npos) << uid;
    const char next = bytes[at + uid.size()];
    EXPECT_TRUE(next != '.' && !absl::ascii_isdigit(next)) << uid;
    auto frames = DecodeDicom(bytes, {}, SoftTissueWindow());
    ASSERT_TRUE(frames.ok()) << uid << ": " << frames.status();
    EXPECT_EQ(cv::norm(frames->frames.front(), reference->frames.front(),
                       cv::NORM_INF),
              0)
        << uid;
  }
}

TEST(DicomDecoderTest, DecodesJpegBaselineWithinItsLoss) {
  DicomSpec spec;
  spec.rows = 32;
  spec.columns = 32;
  spec.bits_allocated = 8;
  for (int i = 0; i < 32 * 32; ++i) spec.values.push_back((i % 32) * 8);
  spec.encoding = DicomEncoding::kJpegBaseline;
  const std::string bytes = MakeDicom(spec);
  ASSERT_NE(bytes.find("1.2.840.10008.1.2.4.50"), std::string::npos);
  auto frames = DecodeDicom(bytes, {}, DicomInput());
  ASSERT_TRUE(frames.ok()) << frames.status();
  double worst = 0;
  for (int i = 0; i < 32 * 32; ++i) {
    worst = std::max<double>(
        worst, std::abs(frames->frames.front().at<float>(i / 32, i % 32) -
                        spec.values[i] / 255.0));
  }
  EXPECT_LT(worst, 12.0 / 255);  // lossy, but the same picture
}

TEST(DicomDecoderTest, RangeAndMinMaxMappings) {
  DicomInput range;
  range.mutable_range()->set_min(-1024);
  range.mutable_range()->set_max(3071);
  auto ranged = DecodeDicom(MakeDicom(CtSlice()), {}, range);
  ASSERT_TRUE(ranged.ok());
  double low, high;
  cv::minMaxLoc(ranged->frames.front(), &low, &high);
  EXPECT_NEAR(low, 0, 1e-6);
  EXPECT_NEAR(high, 1, 1e-6);
  DicomInput min_max;
  min_max.set_min_max(true);
  auto stretched = DecodeDicom(MakeDicom(CtSlice()), {}, min_max);
  ASSERT_TRUE(stretched.ok());
  EXPECT_LT(
      cv::norm(stretched->frames.front(), ranged->frames.front(), cv::NORM_INF),
      1e-6);
}

TEST(DicomDecoderTest, UnmappedEightBitPixelsAreScaledAsAPngWould) {
  DicomSpec spec;
  spec.bits_allocated = 8;
  spec.values.resize(64);
  std::iota(spec.values.begin(), spec.values.end(), 100);
  auto frames = DecodeDicom(MakeDicom(spec), {}, DicomInput());
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_FLOAT_EQ(frames->frames.front().at<float>(0, 0), 100.0f / 255);
  EXPECT_FLOAT_EQ(frames->frames.front().at<float>(7, 7), 163.0f / 255);
}

TEST(DicomDecoderTest, MonochromeOneIsInverted) {
  DicomSpec spec;
  spec.bits_allocated = 8;
  spec.photometric = "MONOCHROME1";
  spec.values.assign(64, 255);
  spec.values[0] = 0;
  auto frames = DecodeDicom(MakeDicom(spec), {}, DicomInput());
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_FLOAT_EQ(frames->frames.front().at<float>(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(frames->frames.front().at<float>(1, 1), 0.0f);
}

TEST(DicomDecoderTest, DecodesEveryFrameOfAMultiFrameObject) {
  DicomSpec spec;
  spec.bits_allocated = 8;
  spec.frames = 3;
  for (int f = 0; f < 3; ++f)
    spec.values.insert(spec.values.end(), 64, f * 100);
  auto frames = DecodeDicom(MakeDicom(spec), {}, DicomInput());
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->frames.size(), 3u);
  for (int f = 0; f < 3; ++f) {
    EXPECT_FLOAT_EQ(frames->frames[f].at<float>(4, 4), f * 100.0f / 255);
  }
}

TEST(DicomDecoderTest, RefusesWhatItCannotTakeWithAClearStatus) {
  DicomSpec jpeg2000 = CtSlice(DicomEncoding::kJpeg2000);
  const absl::Status j2k =
      DecodeDicom(MakeDicom(jpeg2000), {}, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(j2k)) << j2k;
  EXPECT_THAT(j2k.message(), HasSubstr("JPEG 2000"));

  DicomSpec colour;
  colour.bits_allocated = 8;
  colour.samples = 3;
  colour.photometric = "RGB";
  colour.values.assign(64 * 3, 7);
  const absl::Status rgb =
      DecodeDicom(MakeDicom(colour), {}, DicomInput()).status();
  EXPECT_THAT(rgb.message(), HasSubstr("greyscale"));

  const std::string whole = MakeDicom(CtSlice());
  const absl::Status truncated =
      DecodeDicom(whole.substr(0, whole.size() - 200), {}, DicomInput())
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(truncated)) << truncated;

  EXPECT_TRUE(absl::IsInvalidArgument(
      DecodeDicom("DICM but not at 128", {}, DicomInput()).status()));
}

TEST(DicomDecoderTest, RefusesHugeDimensionsBeforeDecompressing) {
  // The header claims 65535 x 65535 pixels; the data holds 64.
  DicomSpec spec;
  spec.values.assign(64, 1);
  std::string bytes = MakeDicom(spec);
  // Rewrite Rows and Columns (US, value 8) in place: tags (0028,0010) and
  // (0028,0011) in explicit little endian.
  for (const char* tag :
       {"\x28\x00\x10\x00US\x02\x00", "\x28\x00\x11\x00US\x02\x00"}) {
    const size_t at = bytes.find(std::string(tag, 8));
    ASSERT_NE(at, std::string::npos);
    bytes[at + 8] = '\xff';
    bytes[at + 9] = '\xff';
  }
  DecodeLimits limits;  // 4096 x 4096
  const absl::Status huge = DecodeDicom(bytes, limits, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(huge)) << huge;
  EXPECT_THAT(huge.message(), HasSubstr("65535x65535"));
  // A small frame count times a large frame is bounded too.
  limits.max_pixels = 100;
  EXPECT_THAT(DecodeDicom(MakeDicom(CtSlice()), limits, DicomInput())
                  .status()
                  .message(),
              HasSubstr("exceeds"));
}

// DCMTK's scan of the first JPEG fragment for its precision loops forever
// on some markers before the frame header (two fuzzer finds): refused first.
TEST(DicomDecoderTest, RefusesAJpegFragmentThatDcmtksScanLoopsOn) {
  for (const char* name : {"regression_hang_tem_marker.dcm",
                           "regression_hang_reserved_marker.dcm"}) {
    const std::string found = testing::ReadFileBytes(
        std::string(UNET_SOURCE_DIR "/tests/fuzz/corpus/dicom_decoder/") +
        name);
    ASSERT_FALSE(found.empty()) << name;
    const absl::Status status = DecodeDicom(found, {}, DicomInput()).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("does not lead to a frame header"));
  }
}

// DCMTK allocates what a header declares: a file that declares 2 GB of
// pixel data in a few hundred bytes is refused without that allocation
// (the fuzzer's finds are in its corpus; it checks the allocation).
TEST(DicomDecoderTest, RefusesDeclaredLengthsBeyondTheFile) {
  std::string bytes = MakeDicom(CtSlice());
  // Pixel Data (7FE0,0010) OW: 2 reserved bytes, then a 4-byte length.
  const size_t at = bytes.find(std::string("\xe0\x7f\x10\x00OW", 6));
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at + 8, 4, "\xf0\xff\xff\x7f");
  const absl::Status status = DecodeDicom(bytes, {}, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  const std::string regression = testing::ReadFileBytes(
      UNET_SOURCE_DIR
      "/tests/fuzz/corpus/dicom_decoder/regression_oom_declared_length.dcm");
  ASSERT_FALSE(regression.empty());
  EXPECT_FALSE(DecodeDicom(regression, {}, DicomInput()).ok());
  for (const char* name :
       {"regression_oom_in_sequence.dcm", "regression_oom_top_level.dcm"}) {
    const std::string found = testing::ReadFileBytes(
        std::string(UNET_SOURCE_DIR "/tests/fuzz/corpus/dicom_decoder/") +
        name);
    ASSERT_FALSE(found.empty()) << name;
    DecodeDicom(found, {}, DicomInput()).IgnoreError();  // no 2 GB
  }
  // A deflated file whose meta group runs past its group length: DCMTK
  // inflated from another byte than the length check walked, and asked for
  // 2.27 GB. The mismatch is refused.
  const std::string meta = testing::ReadFileBytes(
      UNET_SOURCE_DIR
      "/tests/fuzz/corpus/dicom_decoder/"
      "regression_oom_deflated_meta_past_group_length.dcm");
  ASSERT_FALSE(meta.empty());
  const absl::Status meta_status = DecodeDicom(meta, {}, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(meta_status)) << meta_status;
}

// DCMTK's JPEG decoder ran for minutes on a scan without a frame header
// (a fuzzer find): every JPEG frame's header is checked first.
TEST(DicomDecoderTest, RefusesJpegFramesWithoutAMatchingFrameHeader) {
  DicomSpec spec = CtSlice();
  spec.encoding = DicomEncoding::kJpegLossless;
  const std::string good = MakeDicom(spec);
  ASSERT_TRUE(DecodeDicom(good, {}, DicomInput()).ok());
  const size_t sof = good.find("\xff\xc3");  // lossless frame header
  ASSERT_NE(sof, std::string::npos);

  std::string no_frame_header = good;
  no_frame_header[sof + 1] = '\x01';
  absl::Status status = DecodeDicom(no_frame_header, {}, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("a JPEG frame of the DICOM"));

  std::string taller = good;
  taller[sof + 6] = static_cast<char>(taller[sof + 6] + 1);  // height, low
  status = DecodeDicom(taller, {}, DicomInput()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;

  const std::string found =
      testing::ReadFileBytes(UNET_SOURCE_DIR
                             "/tests/fuzz/corpus/dicom_decoder/"
                             "regression_timeout_jpeg_scan_without_frame.dcm");
  ASSERT_FALSE(found.empty());
  EXPECT_TRUE(
      absl::IsInvalidArgument(DecodeDicom(found, {}, DicomInput()).status()));
}

// A JPEG-LS frame header (ITU T.87 SOF55) declaring another size than the
// DICOM header is refused before any pixel is decoded: DCMTK 3.6.7 compares
// them (DJLSDecoderBase, EC_JLSImageDataMismatch), so no check of ours
// duplicates it; this holds DCMTK to it.
TEST(DicomDecoderTest, RefusesJpegLsFramesOfAnotherSize) {
  DicomSpec spec = CtSlice();
  spec.encoding = DicomEncoding::kJpegLsLossless;
  const std::string good = MakeDicom(spec);
  ASSERT_TRUE(DecodeDicom(good, {}, DicomInput()).ok());
  const size_t sof = good.find("\xff\xf7");
  ASSERT_NE(sof, std::string::npos);
  // The frame header's own lines and columns, as the DICOM header says.
  const auto declared = [&](int at) {
    return static_cast<uint8_t>(good[sof + at]) << 8 |
           static_cast<uint8_t>(good[sof + at + 1]);
  };
  ASSERT_EQ(declared(5), spec.rows);
  ASSERT_EQ(declared(7), spec.columns);
  for (const int field : {5, 7}) {  // lines, then columns: big-endian 16 bits
    std::string huge = good;
    huge[sof + field] = '\xff';
    huge[sof + field + 1] = '\xff';
    const absl::Status status = DecodeDicom(huge, {}, DicomInput()).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << field << " " << status;
  }
}

TEST(DicomDecoderTest, NoHeaderValueReachesAStatusMessage) {
  DicomSpec colour;
  colour.bits_allocated = 8;
  colour.samples = 3;
  colour.photometric = "RGB";
  colour.values.assign(64 * 3, 7);
  const absl::Status status =
      DecodeDicom(MakeDicom(colour), {}, DicomInput()).status();
  EXPECT_THAT(status.message(), Not(HasSubstr("Synthetic")));
  EXPECT_THAT(status.message(), Not(HasSubstr("TEST-0001")));
}

// Hostile bytes: flipped, truncated and garbled files of every syntax must
// give a status, never a crash (the sanitizer build makes this stricter).
TEST(DicomDecoderTest, MutatedFilesGiveAStatus) {
  std::mt19937 random(7);
  int refused = 0, decoded = 0;
  for (DicomEncoding encoding :
       {DicomEncoding::kExplicitLittle, DicomEncoding::kDeflated,
        DicomEncoding::kRle, DicomEncoding::kJpegLsLossless,
        DicomEncoding::kJpegLossless}) {
    const std::string original = MakeDicom(CtSlice(encoding));
    for (int i = 0; i < 400; ++i) {
      std::string bytes = original;
      const int flips = 1 + static_cast<int>(random() % 8);
      for (int f = 0; f < flips; ++f) {
        // Past the preamble and "DICM", where the parser reads.
        const size_t at = 132 + random() % (bytes.size() - 132);
        bytes[at] = static_cast<char>(random());
      }
      if (random() % 4 == 0)
        bytes.resize(132 + random() % (bytes.size() - 132));
      const auto frames = DecodeDicom(bytes, {}, SoftTissueWindow());
      (frames.ok() ? decoded : refused) += 1;
      if (frames.ok()) {
        for (const cv::Mat& frame : frames->frames) {
          ASSERT_EQ(frame.type(), CV_32F);
        }
      }
    }
  }
  EXPECT_GT(refused, 0);
  std::cout << decoded << " mutated files decoded, " << refused << " refused\n";
}

}  // namespace
}  // namespace unet
