#include "server/imaging/gray_png_decoder.h"

#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/imaging/png_chunks.h"
#include "tests/server/imaging/png_test_chunks.h"

namespace unet {
namespace {

using namespace std::string_literals;

constexpr DecodeLimits kLimits{int64_t{1} << 24, 8192};

// The standard's Paeth predictor, as the PNG specification writes it.
int StandardPaeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

using testing::PngChunkBytes;
// A grayscale PNG written chunk by chunk, so that tests can choose each
// row's filter, how the data is split and what else the file holds.
struct PngWriter {
  int bit_depth = 8;
  int interlace = 0;
  std::function<int(int)> filter_of_row = [](int y) { return y % 5; };
  size_t idat_parts = 1;
  std::string before_data, after_data, after_end;
  std::string trailing_stream_bytes;  // zlib data after the image's
  int window_log = 15;  // what the zlib header declares (the data as 15)

  // The image's rows in PNG byte order, each behind its filter byte.
  std::string FilteredRows(const cv::Mat& image) const {
    const size_t bpp = bit_depth / 8, row_size = image.cols * bpp;
    std::string rows;
    std::vector<uint8_t> previous(row_size, 0), current(row_size);
    for (int y = 0; y < image.rows; ++y) {
      for (int x = 0; x < image.cols; ++x) {
        if (bpp == 1) {
          current[x] = image.at<uint8_t>(y, x);
        } else {
          current[2 * x] = image.at<uint16_t>(y, x) >> 8;
          current[2 * x + 1] = image.at<uint16_t>(y, x) & 0xff;
        }
      }
      const int filter = filter_of_row(y);
      rows.push_back(static_cast<char>(filter));
      for (size_t i = 0; i < row_size; ++i) {
        const int a = i >= bpp ? current[i - bpp] : 0, b = previous[i];
        const int c = i >= bpp ? previous[i - bpp] : 0;
        const int predicted[5] = {0, a, b, (a + b) / 2, StandardPaeth(a, b, c)};
        rows.push_back(static_cast<char>(current[i] - predicted[filter % 5]));
      }
      previous = current;
    }
    return rows;
  }

  std::string Write(const cv::Mat& image) const {
    std::string header;
    AppendPngUint32(header, image.cols);
    AppendPngUint32(header, image.rows);
    header +=
        {static_cast<char>(bit_depth), 0, 0, 0, static_cast<char>(interlace)};
    const std::string rows = FilteredRows(image) + trailing_stream_bytes;
    std::string stream(compressBound(rows.size()), '\0');
    uLongf size = stream.size();
    compress2(reinterpret_cast<Bytef*>(stream.data()), &size,
              reinterpret_cast<const Bytef*>(rows.data()), rows.size(), 6);
    stream.resize(size);
    if (window_log < 15) {
      // CINFO, and FCHECK so that the header stays valid.
      stream[0] = static_cast<char>((window_log - 8) << 4 | 8);
      int flags = static_cast<uint8_t>(stream[1]) & 0xe0;
      flags += (31 - (static_cast<uint8_t>(stream[0]) * 256 + flags) % 31) % 31;
      stream[1] = static_cast<char>(flags);
    }
    std::string png = "\x89PNG\r\n\x1a\n" + PngChunkBytes("IHDR", header);
    png += before_data;
    const size_t part = stream.size() / idat_parts + 1;
    for (size_t at = 0; at < stream.size(); at += part) {
      png += PngChunkBytes("IDAT", stream.substr(at, part));
      png += PngChunkBytes("IDAT", "");  // empty IDATs are allowed
    }
    return png + after_data + PngChunkBytes("IEND", "") + after_end;
  }
};

cv::Mat RandomImage(int rows, int cols, int type, unsigned seed) {
  cv::Mat image(rows, cols, type);
  cv::theRNG().state = seed;
  cv::randu(image, 0, type == CV_8UC1 ? 256 : 65536);
  return image;
}

cv::Mat OpenCvDecode(const std::string& png) {
  return cv::imdecode(cv::Mat(1, static_cast<int>(png.size()), CV_8U,
                              const_cast<char*>(png.data())),
                      cv::IMREAD_UNCHANGED);
}

// Decodes `png` on the fast path and checks it against OpenCV.
void ExpectSameAsOpenCv(const std::string& png) {
  const std::optional<cv::Mat> fast = DecodeGrayPng(png, kLimits);
  ASSERT_TRUE(fast.has_value());
  const cv::Mat reference = OpenCvDecode(png);
  ASSERT_EQ(fast->type(), reference.type());
  ASSERT_EQ(fast->size(), reference.size());
  EXPECT_EQ(cv::norm(*fast, reference, cv::NORM_INF), 0);
}

TEST(DecodeGrayPngTest, EveryFilterAtBothDepthsAsOpenCvDecodesIt) {
  for (int type : {CV_8UC1, CV_16UC1}) {
    for (const cv::Size size :
         {cv::Size(1, 1), cv::Size(7, 1), cv::Size(1, 9), cv::Size(53, 37)}) {
      PngWriter writer;
      writer.bit_depth = type == CV_8UC1 ? 8 : 16;
      const cv::Mat image = RandomImage(size.height, size.width, type, 7);
      for (int filter = 0; filter <= 5; ++filter) {
        // 0-4: every row one filter; 5: the filters in turn.
        writer.filter_of_row = [filter](int y) {
          return filter < 5 ? filter : y % 5;
        };
        const std::string png = writer.Write(image);
        ExpectSameAsOpenCv(png);
        EXPECT_EQ(cv::norm(*DecodeGrayPng(png, kLimits), image, cv::NORM_INF),
                  0);
      }
    }
  }
}

TEST(DecodeGrayPngTest, PaethOverEveryNeighbourhoodOfAMillionPixels) {
  PngWriter writer;
  writer.filter_of_row = [](int) { return 4; };
  ExpectSameAsOpenCv(writer.Write(RandomImage(1024, 1024, CV_8UC1, 3)));
}

// Eight or four Paeth rows in a row are unfiltered together; runs of
// every length up to 17, at widths around four and eight bytes (where the
// eight rows' steps run off both ends of a row) and far wider, and at 16
// bits, where they are not.
TEST(DecodeGrayPngTest, RunsOfPaethRowsOfEveryLength) {
  // Runs of 1, 2, ... 17 Paeth rows, each after one Sub row, over and over.
  const auto filter_of_row = [](int y) {
    int run = 1;
    while (y > run) {
      y -= run + 1;
      run = run % 17 + 1;
    }
    return y == 0 ? 1 : 4;
  };
  for (int type : {CV_8UC1, CV_16UC1}) {
    for (int width : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1000}) {
      PngWriter writer;
      writer.bit_depth = type == CV_8UC1 ? 8 : 16;
      writer.filter_of_row = filter_of_row;
      const cv::Mat image = RandomImage(400, width, type, width);
      const std::string png = writer.Write(image);
      ExpectSameAsOpenCv(png);
      EXPECT_EQ(cv::norm(*DecodeGrayPng(png, kLimits), image, cv::NORM_INF), 0)
          << width;
    }
  }
}

TEST(DecodeGrayPngTest, TheEmSliceAsItIsStored) {
  std::ifstream file(UNET_TEST_DATA_DIR "/isbi_train_0.png", std::ios::binary);
  const std::string png{std::istreambuf_iterator<char>(file), {}};
  ASSERT_GT(png.size(), 1000u);
  ExpectSameAsOpenCv(png);
}

TEST(DecodeGrayPngTest, ChunksThatChangeNoPixelAndSplitData) {
  PngWriter writer;
  writer.before_data = PngChunkBytes("pHYs", std::string(9, '\1')) +
                       PngChunkBytes("tEXt", "a\0b"s);
  writer.after_data = PngChunkBytes("tIME", std::string(7, '\1'));
  writer.idat_parts = 13;
  ExpectSameAsOpenCv(writer.Write(RandomImage(40, 30, CV_8UC1, 1)));
}

TEST(DecodeGrayPngTest, DeclinesAStreamReachingBeyondItsDeclaredWindow) {
  // Rows repeat 8 rows (520 bytes) apart, so the stream refers back that
  // far, while its header declares a window of 256 bytes: libpng refuses
  // it, and the fast path must not decode it either.
  cv::Mat image = RandomImage(64, 64, CV_8UC1, 9);
  for (int y = 8; y < 64; ++y) image.row(y - 8).copyTo(image.row(y));
  PngWriter narrow;
  narrow.filter_of_row = [](int) { return 0; };
  narrow.window_log = 8;
  const std::string png = narrow.Write(image);
  EXPECT_FALSE(DecodeGrayPng(png, kLimits).has_value());
  EXPECT_TRUE(OpenCvDecode(png).empty());
  // A window that holds the whole image: every reference is within it.
  ExpectSameAsOpenCv(narrow.Write(RandomImage(8, 8, CV_8UC1, 2)));
}

// Streams that a looser inflater (libdeflate) decodes and zlib refuses, as
// libpng does: a fixed-code block with length symbol 286, which zlib calls
// an invalid code (a review's find against a libdeflate version). And a
// stream far too short to fill the image it declares, declined before the
// image's memory is taken.
TEST(DecodeGrayPngTest, DeclinesStreamsZlibRefusesOrThatCannotFillTheImage) {
  std::string png = std::string(kPngSignature);
  std::string header;
  AppendPngUint32(header, 258);
  AppendPngUint32(header, 1);
  header += "\x08\0\0\0\0"s;
  png += PngChunkBytes("IHDR", header);
  png += PngChunkBytes("IDAT", "\x78\x01\x63\x18\x03\x00\x01\x03\x00\x01"s);
  png += PngChunkBytes("IEND", "");
  EXPECT_FALSE(DecodeGrayPng(png, kLimits).has_value());
  EXPECT_TRUE(OpenCvDecode(png).empty());

  PngWriter writer;
  writer.filter_of_row = [](int) { return 0; };
  std::string tiny = writer.Write(cv::Mat(4, 4, CV_8UC1, cv::Scalar(0)));
  // The same stream, under a header that declares 4096 x 4096 pixels.
  const std::string big_header = [] {
    std::string h;
    AppendPngUint32(h, 4096);
    AppendPngUint32(h, 4096);
    return h + "\x08\0\0\0\0"s;
  }();
  const size_t ihdr = kPngSignature.size();
  tiny.replace(ihdr, 25, PngChunkBytes("IHDR", big_header));
  EXPECT_FALSE(DecodeGrayPng(tiny, kLimits).has_value());
  EXPECT_TRUE(OpenCvDecode(tiny).empty());
}

TEST(DecodeGrayPngTest, DeclinesWhatItDoesNotKnowForOpenCvToDecide) {
  const cv::Mat image = RandomImage(20, 24, CV_8UC1, 5);
  const auto declines = [](const std::string& png) {
    return !DecodeGrayPng(png, kLimits).has_value();
  };
  // Other kinds of PNG.
  std::vector<uint8_t> colour;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(8, 8, CV_8UC3), colour));
  EXPECT_TRUE(declines(std::string(colour.begin(), colour.end())));
  PngWriter interlaced;
  interlaced.interlace = 1;
  EXPECT_TRUE(declines(interlaced.Write(image)));
  // Chunks that may change what OpenCV returns, or that break the rules.
  PngWriter transparency;
  transparency.before_data = PngChunkBytes("tRNS", "\0\1"s);
  EXPECT_TRUE(declines(transparency.Write(image)));
  PngWriter gamma;
  gamma.before_data = PngChunkBytes("gAMA", "\0\0\xaf\xc8"s);
  EXPECT_TRUE(declines(gamma.Write(image)));
  PngWriter bad_crc;
  bad_crc.before_data = PngChunkBytes("tEXt", "a\0b"s, /*right_crc=*/false);
  EXPECT_TRUE(declines(bad_crc.Write(image)));
  PngWriter data_after_text;
  data_after_text.after_data =
      PngChunkBytes("tEXt", "a\0b"s) + PngChunkBytes("IDAT", "x");
  EXPECT_TRUE(declines(data_after_text.Write(image)));
  PngWriter after_end;
  after_end.after_end = "junk";
  EXPECT_TRUE(declines(after_end.Write(image)));
  // A stream that holds more than the rows, or a filter that is none.
  PngWriter more_data;
  more_data.trailing_stream_bytes = "\0\0\0"s;
  EXPECT_TRUE(declines(more_data.Write(image)));
  PngWriter unknown_filter;
  unknown_filter.filter_of_row = [](int y) { return y == 3 ? 5 : 0; };
  EXPECT_TRUE(declines(unknown_filter.Write(image)));
  // Truncated anywhere.
  const std::string whole = PngWriter().Write(image);
  for (size_t size = 0; size < whole.size(); size += 7) {
    EXPECT_TRUE(declines(whole.substr(0, size))) << size;
  }
  // Larger than the limits: OpenCV refuses those with the reason.
  const std::string large = PngWriter().Write(cv::Mat(3, 9000, CV_8UC1));
  EXPECT_TRUE(declines(large));
  EXPECT_TRUE(DecodeGrayPng(large, {int64_t{1} << 30, 9000}).has_value());
}

}  // namespace
}  // namespace unet
