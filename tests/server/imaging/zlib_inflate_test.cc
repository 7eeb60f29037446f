#include "server/imaging/zlib_inflate.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace unet {
namespace {

using namespace std::string_literals;

// What InflateZlibExactly returns for `parts` and `size` bytes.
bool OursInParts(const std::vector<absl::string_view>& parts, size_t size,
                 std::string* out = nullptr) {
  std::vector<uint8_t> buffer(size);
  const bool ok = InflateZlibExactly(parts, absl::MakeSpan(buffer));
  if (out != nullptr) out->assign(buffer.begin(), buffer.end());
  return ok;
}

bool Ours(const std::string& stream, size_t size, std::string* out = nullptr) {
  return OursInParts({stream}, size, out);
}

// zlib's verdict: whether `stream` inflates to exactly `size` bytes and
// ends, its check right, with no byte left.
bool ZlibAccepts(const std::string& stream, size_t size) {
  std::vector<uint8_t> out(size + 1);
  z_stream z{};
  EXPECT_EQ(inflateInit(&z), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data()));
  z.avail_in = static_cast<uInt>(stream.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int result = inflate(&z, Z_FINISH);
  const bool whole =
      result == Z_STREAM_END && z.avail_in == 0 && z.total_out == size;
  inflateEnd(&z);
  return whole;
}

std::string Compress(const std::string& data, int level, int window,
                     int strategy) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, window, 8, strategy), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Rows of the test slice, text, runs and noise: literals, matches at every
// distance, distance 1 and incompressible stretches.
std::vector<std::string> Samples() {
  const cv::Mat slice =
      cv::imread(UNET_TEST_DATA_DIR "/isbi_train_0.png", cv::IMREAD_UNCHANGED);
  std::string runs, noise;
  for (int v = 0; v < 250; v += 7) runs += std::string(v + 1, char(v));
  uint32_t state = 12345;
  for (int i = 0; i < 70000; ++i) {
    state = state * 1103515245 + 12345;
    noise += char(state >> 24);
  }
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += "the quick brown fox " + std::to_string(i);
  return {std::string(slice.ptr<char>(0), slice.total()),
          runs,
          noise,
          text,
          "x",
          ""};
}

TEST(InflateZlibExactlyTest, GivesZlibsBytesForEveryLevelStrategyAndWindow) {
  for (const std::string& data : Samples()) {
    for (int strategy :
         {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED}) {
      for (int level : {0, 1, 6, 9}) {
        for (int window : {9, 12, 15}) {
          const std::string stream = Compress(data, level, window, strategy);
          std::string out;
          ASSERT_TRUE(Ours(stream, data.size(), &out))
              << data.size() << " bytes, level " << level << ", window "
              << window << ", strategy " << strategy;
          EXPECT_EQ(out, data);
        }
      }
    }
  }
}

// As a PNG's IDAT chunks cut it: anywhere, with empty chunks between.
TEST(InflateZlibExactlyTest, ReadsAStreamCutIntoPartsAnywhere) {
  const std::string data = Samples()[1] + Samples()[3];
  for (int level : {0, 6}) {  // stored blocks, and Huffman-coded ones
    const std::string stream = Compress(data, level, 15, Z_DEFAULT_STRATEGY);
    for (size_t cut : {1, 2, 3, 7, 8, 9, 61, 1000}) {
      std::vector<absl::string_view> parts;
      for (size_t at = 0; at < stream.size(); at += cut) {
        parts.push_back(absl::string_view(stream).substr(at, cut));
        parts.push_back("");
      }
      std::string out;
      ASSERT_TRUE(OursInParts(parts, data.size(), &out))
          << "level " << level << ", cut every " << cut;
      EXPECT_EQ(out, data);
      parts.push_back(absl::string_view("\0", 1));  // one byte more, alone
      EXPECT_FALSE(OursInParts(parts, data.size()));
    }
  }
}

TEST(InflateZlibExactlyTest, RefusesAnyOtherSizeTruncationOrTrailingByte) {
  const std::string data = Samples()[3];
  const std::string stream = Compress(data, 6, 15, Z_DEFAULT_STRATEGY);
  ASSERT_TRUE(Ours(stream, data.size()));
  EXPECT_FALSE(Ours(stream, data.size() - 1));
  EXPECT_FALSE(Ours(stream, data.size() + 1));
  EXPECT_FALSE(Ours(stream + "\0"s, data.size()));
  for (size_t length = 0; length < stream.size(); ++length) {
    ASSERT_FALSE(Ours(stream.substr(0, length), data.size())) << length;
  }
  std::string wrong_check = stream;
  wrong_check.back() ^= 1;
  EXPECT_FALSE(Ours(wrong_check, data.size()));
}

TEST(InflateZlibExactlyTest, RefusesHeadersZlibRefuses) {
  const std::string stream = Compress("abc", 6, 15, Z_DEFAULT_STRATEGY);
  ASSERT_TRUE(Ours(stream, 3));
  const auto with_header = [&](uint8_t method, uint8_t flags) {
    std::string s = stream;
    s[0] = method;
    // The header's checksum right, unless a test breaks it.
    s[1] = flags;
    return s;
  };
  const auto checked = [](uint8_t method, uint8_t flags) {
    return uint8_t(flags + (31 - (method << 8 | flags) % 31) % 31);
  };
  EXPECT_FALSE(Ours(with_header(0x78, 0x9d), 3));  // checksum wrong
  EXPECT_FALSE(Ours(with_header(0x79, checked(0x79, 0x80)), 3));  // method 9
  EXPECT_FALSE(Ours(with_header(0x88, checked(0x88, 0x80)), 3));  // window 64K
  EXPECT_FALSE(Ours(with_header(0x78, checked(0x78, 0xa0)), 3));  // dictionary
  EXPECT_TRUE(Ours(with_header(0x18, checked(0x18, 0x80)), 3));   // window 512
}

// Writes deflate's bits, least significant first; Huffman codes most
// significant bit first, as the format sends them.
class BitWriter {
 public:
  void Put(uint32_t value, int bits) {
    for (int i = 0; i < bits; ++i) PutBit(value >> i & 1);
  }
  void PutCode(uint32_t code, int length) {
    for (int i = length - 1; i >= 0; --i) PutBit(code >> i & 1);
  }
  // The bytes with a zlib header and `data`'s Adler-32 after them.
  std::string ZlibStream(const std::string& data) const {
    std::string s = "\x78\x01"s + bytes_;
    const uLong check = adler32(1, reinterpret_cast<const Bytef*>(data.data()),
                                static_cast<uInt>(data.size()));
    for (int shift = 24; shift >= 0; shift -= 8) s += char(check >> shift);
    return s;
  }

 private:
  void PutBit(int bit) {
    if (used_ == 0) bytes_ += '\0';
    bytes_.back() |= bit << used_;
    used_ = (used_ + 1) % 8;
  }
  std::string bytes_;
  int used_ = 0;
};

// The fixed code of a literal/length symbol.
void PutFixed(BitWriter& w, int symbol) {
  if (symbol < 144) return w.PutCode(0x30 + symbol, 8);
  if (symbol < 256) return w.PutCode(0x190 + symbol - 144, 9);
  if (symbol < 280) return w.PutCode(symbol - 256, 7);
  w.PutCode(0xc0 + symbol - 280, 8);
}

// A fixed-code final block: 'a', then the length symbol `length_symbol`
// (its extra bits zero) at distance code `distance_code`.
std::string FixedBlockWithMatch(int length_symbol, int distance_code) {
  BitWriter w;
  w.Put(1, 1);  // final
  w.Put(1, 2);  // fixed codes
  PutFixed(w, 'a');
  PutFixed(w, length_symbol);
  w.PutCode(distance_code, 5);
  PutFixed(w, 256);
  return w.ZlibStream("aaaa");
}

TEST(InflateZlibExactlyTest, RefusesFixedCodesZlibRefusesAndFarDistances) {
  // 'a' then three more at distance 1: "aaaa".
  const std::string good = FixedBlockWithMatch(257, 0);
  EXPECT_TRUE(ZlibAccepts(good, 4));
  EXPECT_TRUE(Ours(good, 4));
  // Length symbols 286 and 287, distance codes 30 and 31: libdeflate
  // decodes them, zlib calls them invalid.
  for (const std::string& bad :
       {FixedBlockWithMatch(286, 0), FixedBlockWithMatch(287, 0),
        FixedBlockWithMatch(257, 30), FixedBlockWithMatch(257, 31),
        // distance 2 with one byte written
        FixedBlockWithMatch(257, 1)}) {
    EXPECT_FALSE(ZlibAccepts(bad, 4));
    EXPECT_FALSE(Ours(bad, 4));
  }
}

TEST(InflateZlibExactlyTest, CopiesStoredBlocksAfterUnalignedOnes) {
  BitWriter w;
  w.Put(0, 1);
  w.Put(1, 2);  // fixed: "ab", then the stored block's header unaligned
  PutFixed(w, 'a');
  PutFixed(w, 'b');
  PutFixed(w, 256);
  w.Put(1, 1);
  w.Put(0, 2);
  const std::string body(300, 'z');
  std::string stream = w.ZlibStream("");
  stream.resize(stream.size() - 4);      // the check comes after the body
  stream += "\x2c\x01\xd3\xfe"s + body;  // LEN 300, NLEN its complement
  BitWriter check_only;
  stream += check_only.ZlibStream("ab" + body).substr(2);
  EXPECT_TRUE(ZlibAccepts(stream, 302));
  std::string out;
  EXPECT_TRUE(Ours(stream, 302, &out));
  EXPECT_EQ(out, "ab" + body);
  std::string wrong_complement = stream;
  wrong_complement[stream.size() - 4 - 300 - 1] ^= 1;
  EXPECT_FALSE(ZlibAccepts(wrong_complement, 302));
  EXPECT_FALSE(Ours(wrong_complement, 302));
}

// Canonical codes (RFC 1951, 3.2.2) for `lengths`.
std::vector<uint32_t> CanonicalCodes(const std::vector<int>& lengths) {
  int count[16] = {}, next[16] = {};
  for (int length : lengths) ++count[length];
  count[0] = 0;
  for (int length = 1, code = 0; length < 16; ++length) {
    code = (code + count[length - 1]) << 1;
    next[length] = code;
  }
  std::vector<uint32_t> codes(lengths.size());
  for (size_t s = 0; s < lengths.size(); ++s) {
    if (lengths[s] > 0) codes[s] = next[lengths[s]]++;
  }
  return codes;
}

// A dynamic final block whose literal/length code has 'a' and end-of-block
// (one bit each) and whose distance code lengths are `distance_lengths`
// (each 0 to 2); its data "aa".
std::string DynamicBlock(const std::vector<int>& distance_lengths,
                         int literal_count = 257) {
  // The code-length code: symbols 1, 2 and 18 (a run of zeros).
  std::vector<int> code_length_lengths(19, 0);
  code_length_lengths[18] = 1;
  code_length_lengths[1] = 2;
  code_length_lengths[2] = 2;
  const std::vector<uint32_t> cl = CanonicalCodes(code_length_lengths);
  const auto put_length = [&](BitWriter& w, int symbol) {
    w.PutCode(cl[symbol], code_length_lengths[symbol]);
  };
  const auto put_zeros = [&](BitWriter& w, int count) {
    while (count > 0) {
      const int run = std::min(count, 138);
      put_length(w, 18);
      w.Put(run - 11, 7);
      count -= run;
    }
  };
  BitWriter w;
  w.Put(1, 1);
  w.Put(2, 2);
  w.Put(literal_count - 257, 5);
  w.Put(distance_lengths.size() - 1, 5);
  w.Put(18 - 4, 4);  // code-length code lengths up to symbol 1's place
  const int order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                         11, 4,  12, 3, 13, 2, 14, 1, 15};
  for (int i = 0; i < 18; ++i) w.Put(code_length_lengths[order[i]], 3);
  put_zeros(w, 'a');
  put_length(w, 1);
  put_zeros(w, 256 - 'a' - 1);
  put_length(w, 1);  // end of block
  put_zeros(w, literal_count - 257);
  for (int length : distance_lengths) {
    if (length == 0) {
      put_zeros(w, 11);  // 11 zeros: longer than the set, so refused
    } else {
      put_length(w, length);
    }
  }
  w.PutCode(0, 1);  // 'a'
  w.PutCode(0, 1);
  w.PutCode(1, 1);  // end of block
  return w.ZlibStream("aa");
}

TEST(InflateZlibExactlyTest, AcceptsAndRefusesCodeSetsAsZlibDoes) {
  struct Case {
    std::string stream;
    bool accepted;
  };
  const std::vector<Case> cases = {
      // One distance code of one bit: incomplete, allowed by zlib.
      {DynamicBlock({1}), true},
      {DynamicBlock({1, 1}), true},
      // Two of two bits: incomplete otherwise, refused.
      {DynamicBlock({2, 2}), false},
      // Three of one bit: over-subscribed.
      {DynamicBlock({1, 1, 1}), false},
      // A repeat past the end of the lengths.
      {DynamicBlock({0}), false},
      // 287 literal/length codes: more than zlib allows.
      {DynamicBlock({1}, 287), false},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(ZlibAccepts(cases[i].stream, 2), cases[i].accepted) << i;
    EXPECT_EQ(Ours(cases[i].stream, 2), cases[i].accepted) << i;
  }
}

}  // namespace
}  // namespace unet
