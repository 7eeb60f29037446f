#include "server/imaging/zlib_inflate.h"

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "model/imaging/adler32.h"

namespace unet {
namespace {

// What the next `bits` bits of input decode to, at one level of a table.
struct Entry {
  uint16_t value;  // a literal, a length or distance base, a subtable start
  uint8_t bits;    // bits the code takes at this level
  uint8_t kind;    // one of the kinds below
};

constexpr uint8_t kLiteral = 0x00;   // also a code length's symbol
constexpr uint8_t kBase = 0x10;      // | its extra bits (0 to 13)
constexpr uint8_t kSubtable = 0x20;  // | the bits that index it (1 to 7)
constexpr uint8_t kEndOfBlock = 0x40;
constexpr uint8_t kInvalid = 0x80;  // no code, or one zlib refuses
constexpr uint8_t kLowBits = 0x0f;

// Main tables index this many bits; longer codes continue in subtables.
constexpr int kLiteralBits = 10, kDistanceBits = 8, kCodeLengthBits = 7;
// Room for the main table and the subtables of any code set: a subtable
// holds at most 2^(15 - main bits) entries and each symbol starts at most
// one.
constexpr size_t kLiteralTableSize = (1 << kLiteralBits) + 288 * (1 << 5);
constexpr size_t kDistanceTableSize = (1 << kDistanceBits) + 32 * (1 << 7);
constexpr size_t kCodeLengthTableSize = 1 << kCodeLengthBits;

constexpr uint16_t kLengthBase[29] = {
    3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                                      1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                      4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistanceBase[30] = {
    1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistanceExtra[30] = {0, 0, 0,  0,  1,  1,  2,  2,  3,  3,
                                        4, 4, 5,  5,  6,  6,  7,  7,  8,  8,
                                        9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
// The order in which a dynamic block sends the code lengths' code lengths.
constexpr uint8_t kCodeLengthOrder[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                          11, 4,  12, 3, 13, 2, 14, 1, 15};

// zlib's rules differ by set: the code-length code must be complete; the
// literal/length and distance codes may also be a single one-bit code,
// and the distance code may be empty (then any distance is an error).
enum class CodeSet { kCodeLengths, kLiteralLengths, kDistances };

// The entry symbol `symbol` of `set` decodes to, `bits` long.
Entry SymbolEntry(CodeSet set, int symbol, int bits) {
  const auto at = [&](uint16_t value, uint8_t kind) {
    return Entry{value, static_cast<uint8_t>(bits), kind};
  };
  switch (set) {
    case CodeSet::kCodeLengths:
      return at(symbol, kLiteral);
    case CodeSet::kLiteralLengths:
      if (symbol < 256) return at(symbol, kLiteral);
      if (symbol == 256) return at(0, kEndOfBlock);
      if (symbol < 286) {
        return at(kLengthBase[symbol - 257],
                  kBase | kLengthExtra[symbol - 257]);
      }
      return at(0, kInvalid);  // 286 and 287: fixed codes zlib refuses
    case CodeSet::kDistances:
      if (symbol < 30) {
        return at(kDistanceBase[symbol], kBase | kDistanceExtra[symbol]);
      }
      return at(0, kInvalid);  // 30 and 31, likewise
  }
  return at(0, kInvalid);
}

uint32_t ReverseBits(uint32_t code, int length) {
  uint32_t reversed = 0;
  for (int i = 0; i < length; ++i, code >>= 1) {
    reversed = reversed << 1 | (code & 1);
  }
  return reversed;
}

// Builds the decoding table of the canonical code with `lengths` (one per
// symbol, 0 for none) into `table` (`capacity` entries; the first
// 2^main_bits index the input's next bits, least significant first).
// False for a set zlib refuses: over-subscribed, or incomplete beyond what
// `set` allows.
bool BuildTable(const uint8_t* lengths, int symbols, CodeSet set, int main_bits,
                Entry* table, size_t capacity) {
  int count[16] = {};
  for (int s = 0; s < symbols; ++s) ++count[lengths[s]];
  count[0] = 0;
  int longest = 15;
  while (longest > 0 && count[longest] == 0) --longest;
  int left = 1;  // codes of the current length not yet taken
  for (int length = 1; length <= 15; ++length) {
    left = 2 * left - count[length];
    if (left < 0) return false;  // over-subscribed
  }
  const size_t main_size = size_t{1} << main_bits;
  if (left > 0) {
    const bool allowed = longest == 0
                             ? set == CodeSet::kDistances
                             : set != CodeSet::kCodeLengths && longest == 1;
    if (!allowed) return false;
    std::fill(table, table + main_size, Entry{0, 0, kInvalid});
    if (longest == 0) return true;
  }
  int next_code[16] = {};
  for (int length = 1, code = 0; length <= 15; ++length) {
    code = (code + count[length - 1]) << 1;
    next_code[length] = code;
  }
  // Each long code's main-table prefix, and the longest code under each.
  uint8_t longest_under[1 << kLiteralBits] = {};
  uint16_t subtable_at[1 << kLiteralBits] = {};
  const uint32_t main_mask = main_size - 1;
  uint32_t codes[288];
  for (int s = 0; s < symbols; ++s) {
    const int length = lengths[s];
    if (length == 0) continue;
    codes[s] = ReverseBits(next_code[length]++, length);
    if (length > main_bits) {
      uint8_t& under = longest_under[codes[s] & main_mask];
      under = std::max<uint8_t>(under, length);
    }
  }
  size_t next_free = main_size;
  for (int s = 0; s < symbols; ++s) {
    const int length = lengths[s];
    if (length == 0) continue;
    const uint32_t code = codes[s];
    if (length <= main_bits) {
      const Entry entry = SymbolEntry(set, s, length);
      for (uint32_t i = code; i < main_size; i += 1u << length) {
        table[i] = entry;
      }
      continue;
    }
    const uint32_t prefix = code & main_mask;
    const int sub_bits = longest_under[prefix] - main_bits;
    if (subtable_at[prefix] == 0) {
      if (next_free + (size_t{1} << sub_bits) > capacity) return false;
      subtable_at[prefix] = static_cast<uint16_t>(next_free);
      table[prefix] = Entry{static_cast<uint16_t>(next_free),
                            static_cast<uint8_t>(main_bits),
                            static_cast<uint8_t>(kSubtable | sub_bits)};
      next_free += size_t{1} << sub_bits;
    }
    Entry* subtable = table + subtable_at[prefix];
    const Entry entry = SymbolEntry(set, s, length - main_bits);
    for (uint32_t i = code >> main_bits; i < (1u << sub_bits);
         i += 1u << (length - main_bits)) {
      subtable[i] = entry;
    }
  }
  return true;
}

// The fixed codes' tables, built once.
struct FixedTables {
  Entry literals[kLiteralTableSize];
  Entry distances[kDistanceTableSize];
  FixedTables() {
    uint8_t lengths[288];
    std::fill(lengths, lengths + 144, 8);
    std::fill(lengths + 144, lengths + 256, 9);
    std::fill(lengths + 256, lengths + 280, 7);
    std::fill(lengths + 280, lengths + 288, 8);
    BuildTable(lengths, 288, CodeSet::kLiteralLengths, kLiteralBits, literals,
               kLiteralTableSize);
    std::fill(lengths, lengths + 32, 5);
    BuildTable(lengths, 32, CodeSet::kDistances, kDistanceBits, distances,
               kDistanceTableSize);
  }
};

const FixedTables& Fixed() {
  static const FixedTables* const tables = new FixedTables;
  return *tables;
}

// Deflate's bit order is the bytes' little-endian one: a word loaded
// whole is the next 64 bits only on a little-endian machine.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "BitBuffer::AddWord loads words little-endian");

// Input bits read ahead, the next one the least significant; the bits
// above `count` are always the next input's.
struct BitBuffer {
  uint64_t bits = 0;
  int count = 0;  // bits held, 63 at most

  // Adds the 8 bytes at `in` (56 to 63 bits held after); returns how many
  // of them it holds whole, the bytes to move past.
  int AddWord(const uint8_t* in) {
    uint64_t word;
    std::memcpy(&word, in, 8);  // little-endian, as deflate's bit order
    bits |= word << count;
    const int whole = (63 - count) >> 3;
    count |= 56;
    return whole;
  }

  void Consume(int n) {
    bits >>= n;
    count -= n;
  }

  uint32_t Take(int n) {
    const uint32_t value = bits & ((uint64_t{1} << n) - 1);
    Consume(n);
    return value;
  }

  // The next code's entry in `table`, its bits consumed.
  Entry Decode(const Entry* table, int main_bits) {
    Entry entry = table[bits & ((1u << main_bits) - 1)];
    if (entry.kind & kSubtable) {
      Consume(main_bits);
      entry =
          table[entry.value + (bits & ((1u << (entry.kind & kLowBits)) - 1))];
    }
    Consume(entry.bits);
    return entry;
  }
};

// A match may copy whole 8-byte words past its end while this much output
// is left; closer to the end every step is checked.
constexpr ptrdiff_t kOutputSlack = 258 + 8;

class Inflater {
 public:
  Inflater(absl::Span<const absl::string_view> parts, absl::Span<uint8_t> out)
      : parts_(parts),
        out_begin_(out.data()),
        out_(out.data()),
        out_end_(out.data() + out.size()) {}

  bool Run() {
    Refill();
    const int method = buffer_.Take(8), flags = buffer_.Take(8);
    if (Truncated() || (method << 8 | flags) % 31 != 0 ||
        (method & 0x0f) != Z_DEFLATED || (method >> 4) + 8 > 15 ||
        (flags & 0x20) != 0) {
      return false;  // zlib: a bad header, a window too big, a dictionary
    }
    for (bool last = false; !last;) {
      Refill();
      last = buffer_.bits & 1;
      const int type = (buffer_.bits >> 1) & 3;
      buffer_.Consume(3);
      bool ok = false;
      if (type == 0) {
        ok = CopyStoredBlock();
      } else if (type == 1) {
        ok = DecodeBlock(Fixed().literals, Fixed().distances);
      } else if (type == 2) {
        ok = ReadCodes() && DecodeBlock(literals_, distances_);
      }
      if (!ok || Truncated()) return false;
    }
    buffer_.Consume(buffer_.count & 7);  // to the byte
    Refill();
    const uint32_t check =
        __builtin_bswap32(static_cast<uint32_t>(buffer_.bits));
    buffer_.Consume(32);
    // Neither a byte past the end (zeros read in its place) nor one left.
    const bool exact =
        overrun_ == buffer_.count / 8 && in_ == end_ && !NextPart();
    return exact && out_ == out_end_ &&
           check == Adler32(1, out_begin_, out_end_ - out_begin_);
  }

 private:
  // Moves the input to the next part that is not empty; false at the end.
  bool NextPart() {
    while (next_part_ < parts_.size()) {
      const absl::string_view part = parts_[next_part_++];
      if (part.empty()) continue;
      in_ = reinterpret_cast<const uint8_t*>(part.data());
      end_ = in_ + part.size();
      return true;
    }
    return false;
  }

  // At least 56 bits in the buffer: whole words while 8 bytes of the part
  // remain, else byte by byte, with zero bytes (counted) past the end.
  void Refill() {
    if (end_ - in_ >= 8) {
      in_ += buffer_.AddWord(in_);
      return;
    }
    while (buffer_.count < 56) {  // 63 at most, as AddWord needs
      uint64_t byte = 0;
      if (in_ < end_ || NextPart()) {
        byte = *in_++;
      } else {
        ++overrun_;
      }
      buffer_.bits |= byte << buffer_.count;
      buffer_.count += 8;
    }
  }

  // Whether a bit past the stream's end has been consumed.
  bool Truncated() const { return 8 * overrun_ > buffer_.count; }

  bool CopyStoredBlock() {
    buffer_.Consume(buffer_.count & 7);
    Refill();
    const uint32_t length = buffer_.Take(16), complement = buffer_.Take(16);
    if (length != (~complement & 0xffff) || Truncated() ||
        length > static_cast<size_t>(out_end_ - out_)) {
      return false;
    }
    uint32_t left = length;
    for (; left > 0 && buffer_.count >= 8; --left) *out_++ = buffer_.Take(8);
    if (Truncated()) return false;
    if (left == 0) return true;
    // The buffer is empty: the rest straight from the input.
    buffer_.bits = 0;  // what it held of the input before `in_` moves
    while (left > 0) {
      if (in_ == end_ && !NextPart()) return false;
      const uint32_t n = std::min<size_t>(left, end_ - in_);
      std::memcpy(out_, in_, n);
      out_ += n;
      in_ += n;
      left -= n;
    }
    return true;
  }

  // A dynamic block's code sets, into literals_ and distances_.
  bool ReadCodes() {
    Refill();
    const int literal_count = buffer_.Take(5) + 257,
              distance_count = buffer_.Take(5) + 1;
    const int code_length_count = buffer_.Take(4) + 4;
    if (literal_count > 286 || distance_count > 30) return false;
    uint8_t lengths[286 + 30] = {};
    for (int i = 0; i < code_length_count; ++i) {
      Refill();
      lengths[kCodeLengthOrder[i]] = buffer_.Take(3);
    }
    Entry code_lengths[kCodeLengthTableSize];
    if (!BuildTable(lengths, 19, CodeSet::kCodeLengths, kCodeLengthBits,
                    code_lengths, kCodeLengthTableSize)) {
      return false;
    }
    std::fill(lengths, lengths + 19, 0);
    const int total = literal_count + distance_count;
    for (int have = 0; have < total;) {
      Refill();
      if (Truncated()) return false;
      const int symbol = buffer_.Decode(code_lengths, kCodeLengthBits).value;
      if (symbol < 16) {
        lengths[have++] = symbol;
        continue;
      }
      if (symbol == 16 && have == 0) return false;  // nothing to repeat
      const uint8_t value = symbol == 16 ? lengths[have - 1] : 0;
      const int repeat = symbol == 16   ? 3 + buffer_.Take(2)
                         : symbol == 17 ? 3 + buffer_.Take(3)
                                        : 11 + buffer_.Take(7);
      if (have + repeat > total) return false;
      std::fill(lengths + have, lengths + have + repeat, value);
      have += repeat;
    }
    if (lengths[256] == 0) return false;  // no end-of-block code
    return BuildTable(lengths, literal_count, CodeSet::kLiteralLengths,
                      kLiteralBits, literals_, kLiteralTableSize) &&
           BuildTable(lengths + literal_count, distance_count,
                      CodeSet::kDistances, kDistanceBits, distances_,
                      kDistanceTableSize);
  }

  // Decodes a Huffman block's symbols up to its end-of-block code: far
  // from both ends many at a time, near one a symbol at a time, every step
  // checked.
  bool DecodeBlock(const Entry* literals, const Entry* distances) {
    for (;;) {
      switch (DecodeFarFromTheEnds(literals, distances)) {
        case Stop::kEndOfBlock:
          return true;
        case Stop::kInvalid:
          return false;
        case Stop::kNearAnEnd:
          break;
      }
      Refill();
      Entry entry = buffer_.Decode(literals, kLiteralBits);
      if (entry.kind == kEndOfBlock) return true;
      if ((entry.kind & kInvalid) || Truncated()) return false;
      if (entry.kind == kLiteral) {
        if (out_ == out_end_) return false;
        *out_++ = entry.value;
        continue;
      }
      const uint32_t length = entry.value + buffer_.Take(entry.kind & kLowBits);
      entry = buffer_.Decode(distances, kDistanceBits);
      if (entry.kind & kInvalid) return false;
      const ptrdiff_t distance =
          entry.value + buffer_.Take(entry.kind & kLowBits);
      if (Truncated() || distance > out_ - out_begin_ ||
          length > static_cast<size_t>(out_end_ - out_)) {
        return false;
      }
      for (uint32_t i = 0; i < length; ++i, ++out_) out_[0] = out_[-distance];
    }
  }

  enum class Stop { kEndOfBlock, kInvalid, kNearAnEnd };

  // The block's symbols while 8 bytes of the part and kOutputSlack of
  // output are left, so that only distances need checking. The state is
  // held in locals: a byte stored through `out` may alias the members,
  // which kept the compiler reloading them (the test slice's stream took
  // 0.75 ms that way, 0.69 this way).
  Stop DecodeFarFromTheEnds(const Entry* literals, const Entry* distances) {
    const uint8_t* in = in_;
    BitBuffer buffer = buffer_;
    uint8_t* out = out_;
    constexpr uint32_t kMainMask = (1u << kLiteralBits) - 1;
    Stop stop = Stop::kNearAnEnd;
    while (end_ - in >= 8 && out_end_ - out >= kOutputSlack) {
      in += buffer.AddWord(in);  // 56 bits or more, as Refill
      Entry entry = buffer.Decode(literals, kLiteralBits);
      if (entry.kind == kLiteral) {
        *out++ = entry.value;
        // Two more literals fit in what the buffer still holds.
        entry = literals[buffer.bits & kMainMask];
        if (entry.kind != kLiteral) continue;
        buffer.Consume(entry.bits);
        *out++ = entry.value;
        entry = literals[buffer.bits & kMainMask];
        if (entry.kind != kLiteral) continue;
        buffer.Consume(entry.bits);
        *out++ = entry.value;
        continue;
      }
      if (entry.kind == kEndOfBlock) {
        stop = Stop::kEndOfBlock;
        break;
      }
      if (entry.kind & kInvalid) {
        stop = Stop::kInvalid;
        break;
      }
      const uint32_t length = entry.value + buffer.Take(entry.kind & kLowBits);
      entry = buffer.Decode(distances, kDistanceBits);
      const uint32_t distance =
          entry.value + buffer.Take(entry.kind & kLowBits);
      if ((entry.kind & kInvalid) || distance > out - out_begin_) {
        stop = Stop::kInvalid;
        break;
      }
      out = CopyMatch(out, length, distance);
    }
    in_ = in;
    buffer_ = buffer;
    out_ = out;
    return stop;
  }

  // Copies a match to `to` with room past its end (whole words where the
  // source is at least a word behind, a repeated byte for distance 1);
  // returns its end.
  static uint8_t* CopyMatch(uint8_t* to, uint32_t length, uint32_t distance) {
    const uint8_t* from = to - distance;
    uint8_t* const end = to + length;
    if (distance >= 8) {
      do {
        std::memcpy(to, from, 8);
        to += 8;
        from += 8;
      } while (to < end);
    } else if (distance == 1) {
      const uint64_t word = from[0] * uint64_t{0x0101010101010101};
      do {
        std::memcpy(to, &word, 8);
        to += 8;
      } while (to < end);
    } else {
      for (; to < end; ++to) to[0] = to[-static_cast<ptrdiff_t>(distance)];
    }
    return end;
  }

  const absl::Span<const absl::string_view> parts_;
  size_t next_part_ = 0;
  const uint8_t* in_ = nullptr;  // in the current part, up to end_
  const uint8_t* end_ = nullptr;
  uint8_t* const out_begin_;
  uint8_t* out_;
  uint8_t* const out_end_;
  BitBuffer buffer_;
  int overrun_ = 0;  // zero bytes read past the end
  Entry literals_[kLiteralTableSize];
  Entry distances_[kDistanceTableSize];
};

}  // namespace

bool InflateZlibExactly(absl::Span<const absl::string_view> parts,
                        absl::Span<uint8_t> out) {
  // The tables make it too big for a thread's stack.
  auto inflater = std::make_unique<Inflater>(parts, out);
  return inflater->Run();
}

}  // namespace unet
