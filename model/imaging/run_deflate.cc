#include "model/imaging/run_deflate.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "model/imaging/adler32.h"

namespace unet {
namespace {

// Deflate's longest match, and the shortest worth a match (3 bytes as
// literals cost 24 bits, a match at least 12).
constexpr size_t kMaxMatch = 258;
constexpr size_t kMinMatch = 3;

// A code ready to write: its bits in the order they go out, and how many.
struct Code {
  uint32_t bits = 0;
  int length = 0;
};

// Huffman codes go out most significant bit first into a stream that is
// otherwise filled from each byte's least significant bit.
uint32_t Reversed(uint32_t code, int length) {
  uint32_t reversed = 0;
  for (int i = 0; i < length; ++i)
    reversed |= ((code >> i) & 1) << (length - 1 - i);
  return reversed;
}

// The fixed literal/length code of `symbol` (RFC 1951, 3.2.6).
Code FixedCode(int symbol) {
  if (symbol < 144) return {Reversed(0x30 + symbol, 8), 8};
  if (symbol < 256) return {Reversed(0x190 + symbol - 144, 9), 9};
  if (symbol < 280) return {Reversed(symbol - 256, 7), 7};
  return {Reversed(0xc0 + symbol - 280, 8), 8};
}

struct Tables {
  std::array<Code, 256> literal;
  // A match of each length at distance 1: the length's symbol, its extra
  // bits, then distance code 0 (five zero bits, no extra bits).
  std::array<Code, kMaxMatch + 1> match;
  Code end_of_block;
};

const Tables& FixedTables() {
  static const Tables tables = [] {
    Tables t;
    for (int value = 0; value < 256; ++value)
      t.literal[value] = FixedCode(value);
    // Length symbols 257..284 cover 3..257 in groups of four symbols whose
    // extra bits grow by one each group; 285 is 258 alone (RFC 1951, 3.2.5).
    int base = 3;
    for (int symbol = 257; symbol <= 284; ++symbol) {
      const int extra = symbol < 265 ? 0 : (symbol - 261) / 4;
      const Code code = FixedCode(symbol);
      for (int offset = 0; offset < (1 << extra); ++offset) {
        const int length = base + offset;
        if (length > 257) break;
        t.match[length] = {code.bits | uint32_t(offset) << code.length,
                           code.length + extra + 5};
      }
      base += 1 << extra;
    }
    const Code longest = FixedCode(285);
    t.match[kMaxMatch] = {longest.bits, longest.length + 5};
    t.end_of_block = FixedCode(256);
    return t;
  }();
  return tables;
}

// Packs codes into bytes, least significant bit first, into a buffer
// large enough for all of them.
class BitWriter {
 public:
  explicit BitWriter(char* out) : next_(out) {}

  void Write(Code code) {
    pending_ |= uint64_t{code.bits} << count_;
    count_ += code.length;
    if (count_ >= 32) {
      const uint32_t word = static_cast<uint32_t>(pending_);
      const char bytes[4] = {
          static_cast<char>(word), static_cast<char>(word >> 8),
          static_cast<char>(word >> 16), static_cast<char>(word >> 24)};
      std::memcpy(next_, bytes, 4);
      next_ += 4;
      pending_ >>= 32;
      count_ -= 32;
    }
  }

  // Writes what is pending, the last byte padded with zero bits, and
  // returns the end of what was written.
  char* Flush() {
    for (; count_ > 0; count_ -= 8, pending_ >>= 8) {
      *next_++ = static_cast<char>(pending_);
    }
    return next_;
  }

 private:
  char* next_;
  uint64_t pending_ = 0;
  int count_ = 0;
};

// The length of the run of `bytes[0]` at the front of `bytes` (at least 1),
// compared eight bytes at a time: the lowest differing byte of a
// little-endian word is the first.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
size_t RunLength(const uint8_t* bytes, size_t size) {
  const uint64_t repeated = bytes[0] * 0x0101010101010101ull;
  size_t length = 1;
  while (length + 8 <= size) {
    uint64_t word;
    std::memcpy(&word, bytes + length, 8);
    const uint64_t differs = word ^ repeated;
    if (differs != 0) return length + __builtin_ctzll(differs) / 8;
    length += 8;
  }
  while (length < size && bytes[length] == bytes[0]) ++length;
  return length;
}

}  // namespace

std::string DeflateRuns(absl::string_view bytes) {
  const Tables& tables = FixedTables();
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  // Two header bytes, 3 bits of block header, at most 9 bits a byte, 7 of
  // end of block, the padding and the checksum.
  std::string out(2 + (3 + 9 * bytes.size() + 7 + 7) / 8 + 4, '\0');
  out[0] = '\x78';  // deflate, 32 KiB window
  out[1] = '\x01';  // no dictionary, header check
  BitWriter writer(out.data() + 2);
  writer.Write({0b011, 3});  // the final block, fixed Huffman codes
  for (size_t at = 0; at < bytes.size();) {
    size_t run = RunLength(data + at, bytes.size() - at);
    writer.Write(tables.literal[data[at]]);
    at += run;
    for (--run; run >= kMinMatch;) {
      const size_t match = run < kMaxMatch ? run : kMaxMatch;
      writer.Write(tables.match[match]);
      run -= match;
    }
    for (; run > 0; --run) writer.Write(tables.literal[data[at - run]]);
  }
  writer.Write(tables.end_of_block);
  out.resize(writer.Flush() - out.data());
  const uint32_t adler =
      Adler32(1, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  const char checksum[4] = {
      static_cast<char>(adler >> 24), static_cast<char>(adler >> 16),
      static_cast<char>(adler >> 8), static_cast<char>(adler)};
  out.append(checksum, 4);
  return out;
}

}  // namespace unet
