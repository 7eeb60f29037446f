#include "server/imaging/gray_png_decoder.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "absl/strings/match.h"
#include "absl/types/span.h"
#include "server/imaging/png_chunks.h"
#include "server/imaging/zlib_inflate.h"

namespace unet {
namespace {

// libpng's default limit on either side (PNG_USER_WIDTH_MAX and
// PNG_USER_HEIGHT_MAX): what it refuses is left to it.
constexpr uint32_t kLibpngMaxSide = 1000000;

// The next chunk, when it lies within `rest` and its CRC is right.
std::optional<PngChunk> NextRightChunk(absl::string_view& rest) {
  std::optional<PngChunk> chunk = NextPngChunk(rest);
  if (!chunk || !chunk->CrcIsRight()) return std::nullopt;
  return chunk;
}

// Ancillary chunks that change no pixel of what OpenCV returns: text, time
// and physical pixel size, where the standard lets them stand. libpng only
// warns about a malformed one.
bool ChangesNoPixel(absl::string_view type, bool after_image_data) {
  if (type == "tEXt" || type == "zTXt" || type == "iTXt" || type == "tIME") {
    return true;
  }
  return type == "pHYs" && !after_image_data;
}

// The Paeth predictor, as stb_image writes it: equal to the standard's
// (checked on every input in the tests' reference), with a shorter chain of
// dependencies on `left`, the byte just decoded.
inline int Paeth(int left, int above, int above_left) {
  const int threshold = above_left * 3 - (left + above);
  const int low = left < above ? left : above;
  const int high = left < above ? above : left;
  const int if_not_high = high <= threshold ? low : above_left;
  return threshold <= low ? high : if_not_high;
}

// Reverses a row's filter in place; `kBpp` bytes a pixel (a constant, so
// that the byte just decoded stays in a register), `previous` the row
// above, already unfiltered (zeros above the first).
template <size_t kBpp>
bool Unfilter(uint8_t filter, uint8_t* row, const uint8_t* previous,
              size_t size) {
  constexpr size_t bpp = kBpp;
  switch (filter) {
    case 0:  // None
      return true;
    case 1:  // Sub
      for (size_t x = bpp; x < size; ++x) row[x] += row[x - bpp];
      return true;
    case 2:  // Up
      for (size_t x = 0; x < size; ++x) row[x] += previous[x];
      return true;
    case 3:  // Average
      for (size_t x = 0; x < bpp; ++x) row[x] += previous[x] >> 1;
      for (size_t x = bpp; x < size; ++x) {
        row[x] += (row[x - bpp] + previous[x]) >> 1;
      }
      return true;
    case 4:  // Paeth
      for (size_t x = 0; x < bpp; ++x) row[x] += previous[x];
      for (size_t x = bpp; x < size; ++x) {
        row[x] += Paeth(row[x - bpp], previous[x], previous[x - bpp]);
      }
      return true;
    default:
      return false;
  }
}

// Reverses the Paeth filter of four consecutive 8-bit rows (`stride` bytes
// apart, `previous` the row above the first) in place. Row k runs k bytes
// behind row k - 1, whose bytes it needs, so that the four rows' chains of
// dependencies on the byte just decoded interleave: a third of the time of
// one row after another on the test slice (docs/performance.md).
void UnpaethFourRows(uint8_t* first, size_t stride, const uint8_t* previous,
                     size_t size) {
  uint8_t* rows[4];
  const uint8_t* above[4];
  for (int k = 0; k < 4; ++k) {
    rows[k] = first + k * stride;
    above[k] = k == 0 ? previous : rows[k - 1];
  }
  uint8_t left[4] = {};  // left of column 0: zero, as the standard says
  const auto step = [&](size_t k, size_t x) {
    const int above_left = x == 0 ? 0 : above[k][x - 1];
    left[k] = rows[k][x] += Paeth(left[k], above[k][x], above_left);
  };
  // The wave starts with row 0 alone and ends with row 3 alone.
  for (size_t x = 0; x < 3; ++x) {
    for (size_t k = 0; k <= x; ++k) step(k, x - k);
  }
  for (size_t x = 3; x < size; ++x) {
    step(0, x);
    step(1, x - 1);
    step(2, x - 2);
    step(3, x - 3);
  }
  for (size_t x = size; x < size + 3; ++x) {
    for (size_t k = x - size + 1; k < 4; ++k) step(k, x - k);
  }
}

#if defined(__SSE2__)
// Transposes eight 8-byte rows (the low halves of `rows`): lane k of
// columns[j], 16 bits wide, is byte j of rows[k].
void TransposeBytes8x8(const __m128i rows[8], __m128i columns[8]) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i r01 = _mm_unpacklo_epi8(rows[0], rows[1]);
  const __m128i r23 = _mm_unpacklo_epi8(rows[2], rows[3]);
  const __m128i r45 = _mm_unpacklo_epi8(rows[4], rows[5]);
  const __m128i r67 = _mm_unpacklo_epi8(rows[6], rows[7]);
  const __m128i low03 = _mm_unpacklo_epi16(r01, r23);   // columns 0-3
  const __m128i high03 = _mm_unpackhi_epi16(r01, r23);  // columns 4-7
  const __m128i low47 = _mm_unpacklo_epi16(r45, r67);
  const __m128i high47 = _mm_unpackhi_epi16(r45, r67);
  const __m128i pairs[4] = {
      _mm_unpacklo_epi32(low03, low47), _mm_unpackhi_epi32(low03, low47),
      _mm_unpacklo_epi32(high03, high47), _mm_unpackhi_epi32(high03, high47)};
  for (int i = 0; i < 4; ++i) {
    columns[2 * i] = _mm_unpacklo_epi8(pairs[i], zero);
    columns[2 * i + 1] = _mm_unpackhi_epi8(pairs[i], zero);
  }
}

// The standard's Paeth predictor in eight 16-bit lanes.
__m128i Paeth8(__m128i left, __m128i above, __m128i above_left) {
  const __m128i zero = _mm_setzero_si128();
  const auto abs = [&](__m128i x) {
    return _mm_max_epi16(x, _mm_sub_epi16(zero, x));
  };
  const __m128i above_less = _mm_sub_epi16(above, above_left);
  const __m128i left_less = _mm_sub_epi16(left, above_left);
  const __m128i to_left = abs(above_less), to_above = abs(left_less);
  const __m128i to_above_left = abs(_mm_add_epi16(above_less, left_less));
  const __m128i not_left =
      _mm_or_si128(_mm_cmpgt_epi16(to_left, to_above),
                   _mm_cmpgt_epi16(to_left, to_above_left));
  const __m128i not_above = _mm_cmpgt_epi16(to_above, to_above_left);
  const __m128i above_or_corner = _mm_or_si128(
      _mm_and_si128(not_above, above_left), _mm_andnot_si128(not_above, above));
  return _mm_or_si128(_mm_and_si128(not_left, above_or_corner),
                      _mm_andnot_si128(not_left, left));
}

// Reverses the Paeth filter of 8 x kGroups consecutive 8-bit rows
// (`stride` bytes apart) in place, a row in each 16-bit lane: each lane
// runs a column behind the lane of the row above, whose byte of the step
// before is the one above it, so that one step decodes a byte of every row
// (a wavefront; the groups' chains of dependencies interleave). Eight steps
// at a time, each row's eight bytes are turned into the steps' lanes and
// back by 8 x 8 transposes. `above` is the row above the first, after a
// zero and before 8 x kGroups + 8 more. Sixteen rows at a time took
// 0.2 ms of the test slice's decoding, against 0.33 four rows at a time
// with scalar code (docs/performance.md).
template <int kGroups>
void UnpaethRowsInLanes(uint8_t* first, size_t stride, const uint8_t* above,
                        size_t size) {
  constexpr int kRows = 8 * kGroups;
  uint8_t* rows[kRows];
  for (int r = 0; r < kRows; ++r) rows[r] = first + r * stride;
  const ptrdiff_t width = static_cast<ptrdiff_t>(size);
  const __m128i low_byte = _mm_set1_epi16(0xff);
  // Each group's bytes decoded at the step before, and the one before.
  __m128i last[kGroups], before_last[kGroups];
  for (int g = 0; g < kGroups; ++g)
    last[g] = before_last[g] = _mm_setzero_si128();
  for (ptrdiff_t t0 = 0; t0 < width + kRows - 1; t0 += 8) {
    // Row r's eight steps are its columns t0 - r to t0 - r + 7; rows that
    // run off either end go through `edge`, zeros outside.
    __m128i steps[kGroups][8];
    uint8_t edge[kRows][8];
    bool at_edge[kRows];
    for (int g = 0; g < kGroups; ++g) {
      __m128i bytes[8];
      for (int k = 0; k < 8; ++k) {
        const int r = 8 * g + k;
        const ptrdiff_t from = t0 - r;
        at_edge[r] = from < 0 || from + 8 > width;
        const uint8_t* source = rows[r] + from;
        if (at_edge[r]) {
          for (int j = 0; j < 8; ++j) {
            const ptrdiff_t x = from + j;
            edge[r][j] = x >= 0 && x < width ? rows[r][x] : 0;
          }
          source = edge[r];
        }
        bytes[k] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(source));
      }
      TransposeBytes8x8(bytes, steps[g]);
    }
    for (int j = 0; j < 8; ++j) {
      const ptrdiff_t t = t0 + j;
      // Above a group's first lane: the row above the rows, or the last
      // lane of the group before.
      __m128i up[kGroups], up_left[kGroups];
      up[0] = _mm_insert_epi16(_mm_slli_si128(last[0], 2), above[1 + t], 0);
      up_left[0] =
          _mm_insert_epi16(_mm_slli_si128(before_last[0], 2), above[t], 0);
      for (int g = 1; g < kGroups; ++g) {
        up[g] = _mm_or_si128(_mm_slli_si128(last[g], 2),
                             _mm_srli_si128(last[g - 1], 14));
        up_left[g] = _mm_or_si128(_mm_slli_si128(before_last[g], 2),
                                  _mm_srli_si128(before_last[g - 1], 14));
      }
      for (int g = 0; g < kGroups; ++g) {
        const __m128i decoded = _mm_and_si128(
            _mm_add_epi16(steps[g][j], Paeth8(last[g], up[g], up_left[g])),
            low_byte);
        before_last[g] = last[g];
        last[g] = decoded;
        steps[g][j] = _mm_packus_epi16(decoded, decoded);
      }
    }
    for (int g = 0; g < kGroups; ++g) {
      __m128i bytes[8];
      TransposeBytes8x8(steps[g], bytes);
      for (int k = 0; k < 8; ++k) {
        const int r = 8 * g + k;
        const __m128i row_bytes = _mm_packus_epi16(bytes[k], bytes[k]);
        const ptrdiff_t from = t0 - r;
        if (!at_edge[r]) {
          _mm_storel_epi64(reinterpret_cast<__m128i*>(rows[r] + from),
                           row_bytes);
          continue;
        }
        _mm_storel_epi64(reinterpret_cast<__m128i*>(edge[r]), row_bytes);
        for (int j = 0; j < 8; ++j) {
          const ptrdiff_t x = from + j;
          if (x >= 0 && x < width) rows[r][x] = edge[r][j];
        }
      }
    }
  }
}
#endif  // __SSE2__

// Whether the `count` rows from `row`, `stride` apart, are all Paeth's.
bool AllPaeth(const uint8_t* row, size_t stride, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (row[i * stride] != 4) return false;
  }
  return true;
}

// Unfilters an image's `count` rows (each its filter byte, then `row_size`
// bytes; `stride` apart) in place. False on a filter type the standard
// does not define.
template <size_t kBpp>
bool UnfilterRows(uint8_t* rows, size_t count, size_t stride, size_t row_size) {
  const std::vector<uint8_t> zeros(stride, 0);  // above the first row
#if defined(__SSE2__)
  std::vector<uint8_t> padded_above;  // for UnpaethRowsInLanes
#endif
  for (size_t i = 0; i < count;) {
    uint8_t* row = rows + i * stride;
    const uint8_t* previous = i == 0 ? zeros.data() : row - stride;
#if defined(__SSE2__)
    if (kBpp == 1 && i + 8 <= count && AllPaeth(row, stride, 8)) {
      padded_above.assign(row_size + 32, 0);
      std::memcpy(padded_above.data() + 1, previous + 1, row_size);
      if (i + 16 <= count && AllPaeth(row + 8 * stride, stride, 8)) {
        UnpaethRowsInLanes<2>(row + 1, stride, padded_above.data(), row_size);
        i += 16;
      } else {
        UnpaethRowsInLanes<1>(row + 1, stride, padded_above.data(), row_size);
        i += 8;
      }
      continue;
    }
#endif
    if (kBpp == 1 && row_size >= 4 && i + 4 <= count &&
        AllPaeth(row, stride, 4)) {
      UnpaethFourRows(row + 1, stride, previous + 1, row_size);
      i += 4;
      continue;
    }
    if (!Unfilter<kBpp>(row[0], row + 1, previous + 1, row_size)) {
      return false;
    }
    ++i;
  }
  return true;
}

std::optional<cv::Mat> Decode(absl::string_view bytes,
                              const DecodeLimits& limits) {
  if (!absl::StartsWith(bytes, kPngSignature)) return std::nullopt;
  absl::string_view rest = bytes.substr(kPngSignature.size());
  const std::optional<PngChunk> header = NextRightChunk(rest);
  if (!header || header->type != "IHDR" || header->data.size() != 13) {
    return std::nullopt;
  }
  const char* field = header->data.data();
  const uint32_t width = PngUint32(field), height = PngUint32(field + 4);
  const int bit_depth = field[8];
  // Grayscale, deflate, adaptive filtering, not interlaced.
  if ((bit_depth != 8 && bit_depth != 16) || field[9] != 0 || field[10] != 0 ||
      field[11] != 0 || field[12] != 0) {
    return std::nullopt;
  }
  if (width < 1 || height < 1 || width > kLibpngMaxSide ||
      height > kLibpngMaxSide || width > limits.max_side ||
      height > limits.max_side || int64_t{width} * height > limits.max_pixels) {
    return std::nullopt;
  }
  std::vector<absl::string_view> image_data;
  bool after_image_data = false, ended = false;
  while (!ended) {
    const std::optional<PngChunk> chunk = NextRightChunk(rest);
    if (!chunk) return std::nullopt;
    if (chunk->type == "IDAT") {
      if (after_image_data) return std::nullopt;  // IDATs run unbroken
      image_data.push_back(chunk->data);
      continue;
    }
    after_image_data = !image_data.empty();
    if (chunk->type == "IEND") {
      if (!chunk->data.empty() || !rest.empty()) return std::nullopt;
      ended = true;
    } else if (!ChangesNoPixel(chunk->type, after_image_data)) {
      return std::nullopt;
    }
  }
  if (image_data.empty()) return std::nullopt;

  const size_t bpp = bit_depth / 8, row_size = size_t{width} * bpp;
  // libpng inflates a row at a time in the window the stream's header
  // declares, so a back-reference beyond that window fails there; inflating
  // many rows at a time would accept it. Only where the window is zlib's
  // largest, or holds the whole image, do both agree on every stream.
  const absl::string_view first = image_data.front();
  if (first.empty()) return std::nullopt;
  const int window_log = (static_cast<uint8_t>(first[0]) >> 4) + 8;
  if (window_log < 15 &&
      (size_t{1} << window_log) < size_t{height} * (1 + row_size)) {
    return std::nullopt;
  }
  // The whole stream at once, into the filtered rows (each its filter
  // byte, then the row), unfiltered in place: zlib, a block at a time,
  // took 0.2 ms longer for the test slice (docs/performance.md).
  const size_t stride = 1 + row_size;
  const auto inflate_and_unfilter = [&](uint8_t* rows) {
    return InflateZlibExactly(image_data,
                              absl::MakeSpan(rows, height * stride)) &&
           (bpp == 1 ? UnfilterRows<1>(rows, height, stride, row_size)
                     : UnfilterRows<2>(rows, height, stride, row_size));
  };
  if (bpp == 1) {
    // The rows are the image's, their filter bytes a column left of it: no
    // second buffer, whose pages the kernel would fault in anew each time.
    cv::Mat rows(static_cast<int>(height), static_cast<int>(stride), CV_8UC1);
    if (!inflate_and_unfilter(rows.data)) return std::nullopt;
    return rows.colRange(1, static_cast<int>(stride));
  }
  std::unique_ptr<uint8_t[]> rows(new uint8_t[height * stride]);
  if (!inflate_and_unfilter(rows.get())) return std::nullopt;
  cv::Mat image(static_cast<int>(height), static_cast<int>(width), CV_16UC1);
  for (int y = 0; y < image.rows; ++y) {
    const uint8_t* row = rows.get() + y * stride;
    uint16_t* out = image.ptr<uint16_t>(y);  // PNG is big-endian
    for (size_t x = 0; x < width; ++x) {
      out[x] = row[1 + 2 * x] << 8 | row[2 + 2 * x];
    }
  }
  return image;
}

}  // namespace

std::optional<cv::Mat> DecodeGrayPng(absl::string_view bytes,
                                     const DecodeLimits& limits) {
  try {
    return Decode(bytes, limits);
  } catch (const std::bad_alloc&) {
    return std::nullopt;  // OpenCV will say what it says of the memory
  } catch (const cv::Exception&) {
    return std::nullopt;
  }
}

}  // namespace unet
