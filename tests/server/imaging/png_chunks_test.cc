#include "server/imaging/png_chunks.h"

#include <fstream>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/imaging/image_decoder.h"
#include "tests/server/imaging/png_test_chunks.h"

namespace unet {
namespace {

using namespace std::string_literals;

using testing::PngChunkBytes;

std::string SmallPng() {
  std::vector<uint8_t> png;
  EXPECT_TRUE(cv::imencode(".png", cv::Mat(6, 5, CV_8UC1, cv::Scalar(3)), png));
  return std::string(png.begin(), png.end());
}

TEST(PngChunksTest, SplitsChunksAndChecksTheirCrc) {
  const std::string file =
      PngChunkBytes("tEXt", "a\0b"s) + PngChunkBytes("IEND", "");
  absl::string_view rest = file;
  std::optional<PngChunk> text = NextPngChunk(rest);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->type, "tEXt");
  EXPECT_EQ(text->data, "a\0b"s);
  EXPECT_TRUE(text->CrcIsRight());
  std::optional<PngChunk> end = NextPngChunk(rest);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->type, "IEND");
  EXPECT_TRUE(rest.empty());
  EXPECT_FALSE(NextPngChunk(rest).has_value());

  std::string corrupt = PngChunkBytes("tEXt", "abc");
  corrupt.back() ^= 1;
  absl::string_view view = corrupt;
  EXPECT_FALSE(NextPngChunk(view)->CrcIsRight());
}

TEST(PngChunksTest, EveryChunkUpToIendMustLieInTheFile) {
  const std::string png = SmallPng();
  EXPECT_TRUE(CheckPngChunkLengths(png).ok());
  EXPECT_TRUE(CheckPngChunkLengths(png + "after the end").ok());
  // Truncated anywhere, or without IEND: refused, as libpng would.
  for (size_t size = 0; size < png.size(); ++size) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        CheckPngChunkLengths(absl::string_view(png).substr(0, size))))
        << size;
  }
  // A chunk declaring 1.7 GB in a file of a few hundred bytes.
  std::string lying = png;
  lying.insert(33, "\x66\x00\x00\x17tEXtabc"s);
  const absl::Status status = CheckPngChunkLengths(lying);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_NE(status.message().find("declares 1711276055 bytes"),
            std::string::npos)
      << status;
}

// A fuzzer find: 418 bytes whose text chunk declares 1.7 GB, which libpng
// allocated and cleared (6 s) before it found the file shorter.
TEST(PngChunksTest, TheDecoderRefusesTheFindAtOnce) {
  std::ifstream file(UNET_SOURCE_DIR
                     "/tests/fuzz/corpus/image_decoder_encoded/"
                     "regression_oom_text_chunk_length_past_end.png",
                     std::ios::binary);
  segmentation::v1::Image image;
  image.set_encoded(std::string(std::istreambuf_iterator<char>(file), {}));
  ASSERT_EQ(image.encoded().size(), 418u);
  const absl::StatusOr<cv::Mat> decoded =
      DecodeImage(image, DecodeLimits{1 << 16, 1024});
  // Refused by the length check, before libpng: not as "corrupt".
  EXPECT_TRUE(absl::IsInvalidArgument(decoded.status())) << decoded.status();
  EXPECT_NE(decoded.status().message().find("declares"), std::string::npos)
      << decoded.status();
}

}  // namespace
}  // namespace unet
