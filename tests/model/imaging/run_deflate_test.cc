#include "model/imaging/run_deflate.h"

#include <zlib.h>

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace unet {
namespace {

// What zlib inflates `stream` to; fails the test unless it is exactly
// `expected_size` bytes with the stream's checksum right and nothing after.
std::string Inflate(const std::string& stream, size_t expected_size) {
  std::string out(expected_size + 1, '\0');
  z_stream z{};
  EXPECT_EQ(inflateInit(&z), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data()));
  z.avail_in = static_cast<uInt>(stream.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END) << z.msg;
  EXPECT_EQ(z.avail_in, 0u);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

void ExpectRoundTrip(const std::string& bytes) {
  EXPECT_EQ(Inflate(DeflateRuns(bytes), bytes.size()), bytes);
}

TEST(RunDeflateTest, NothingAndOneByte) {
  ExpectRoundTrip("");
  ExpectRoundTrip(std::string(1, '\0'));
  ExpectRoundTrip(std::string(1, '\xff'));
}

// Every run length across each of the match lengths' extra-bit groups and
// past the longest match, of values with 8-bit and 9-bit literal codes.
TEST(RunDeflateTest, RunsOfEveryLength) {
  for (int value : {0, 1, 143, 144, 200, 255}) {
    std::string bytes;
    for (int length = 1; length <= 3 * 258 + 4; ++length) {
      bytes.append(length, static_cast<char>(value));
      bytes.push_back(static_cast<char>(value ^ 0x55));
    }
    ExpectRoundTrip(bytes);
  }
}

TEST(RunDeflateTest, NoiseAndMaskRows) {
  std::mt19937 random(7);
  std::string noise(100003, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  ExpectRoundTrip(noise);
  // A mask's stream: each row behind a filter byte 0, runs of a few labels.
  std::string rows;
  for (int y = 0; y < 700; ++y) {
    rows.push_back('\0');
    for (int x = 0; x < 700; ++x) {
      const int dx = x - 350, dy = y - 300;
      rows.push_back(dx * dx + dy * dy < 200 * 200 ? 1 : (x / 97 + y) % 3);
    }
  }
  ExpectRoundTrip(rows);
}

// Runs compress to a few bits each: a run of up to 258 bytes costs a
// literal and one match, at most 27 bits.
TEST(RunDeflateTest, RunsCostAFewBitsEach) {
  std::string bytes;
  for (int run = 0; run < 1000; ++run) {
    bytes.append(200, static_cast<char>(run % 2));
  }
  const std::string stream = DeflateRuns(bytes);
  ExpectRoundTrip(bytes);
  EXPECT_LE(stream.size(), 2 + 1000 * 27 / 8 + 1 + 1 + 4);
}

}  // namespace
}  // namespace unet
