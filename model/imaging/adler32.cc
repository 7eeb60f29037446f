#include "model/imaging/adler32.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>

namespace unet {
namespace {

constexpr uint32_t kBase = 65521;
// zlib's NMAX: the most bytes before the sums must be reduced, so that
// they fit 32 bits; a multiple of 16.
constexpr size_t kBlock = 5552;

#if defined(__SSE2__)
uint64_t LaneSum(__m128i lanes) {
  alignas(16) uint32_t values[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(values), lanes);
  return uint64_t{values[0]} + values[1] + values[2] + values[3];
}
#endif

}  // namespace

uint32_t Adler32(uint32_t adler, const uint8_t* data, size_t size) {
  uint64_t sum = adler & 0xffff, weighted_sum = adler >> 16;
#if defined(__SSE2__)
  // Sixteen bytes b0..b15 at a time, after bytes whose sum is S: the sum
  // grows by their sum, the weighted sum by 16 S + 16 b0 + 15 b1 + ... + b15.
  const __m128i zero = _mm_setzero_si128();
  const __m128i first_weights = _mm_set_epi16(9, 10, 11, 12, 13, 14, 15, 16);
  const __m128i last_weights = _mm_set_epi16(1, 2, 3, 4, 5, 6, 7, 8);
  while (size >= 16) {
    const size_t block = std::min(size, kBlock) / 16 * 16;
    // Lanes of the block's byte sum, of the sums before each 16 bytes, and
    // of the bytes times their weights.
    __m128i sums = zero, sums_before = zero, weighted = zero;
    for (size_t i = 0; i < block; i += 16) {
      const __m128i bytes =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
      sums_before = _mm_add_epi32(sums_before, sums);
      sums = _mm_add_epi32(sums, _mm_sad_epu8(bytes, zero));
      weighted = _mm_add_epi32(
          weighted,
          _mm_madd_epi16(_mm_unpacklo_epi8(bytes, zero), first_weights));
      weighted = _mm_add_epi32(
          weighted,
          _mm_madd_epi16(_mm_unpackhi_epi8(bytes, zero), last_weights));
    }
    weighted_sum += sum * block + 16 * LaneSum(sums_before) + LaneSum(weighted);
    sum += LaneSum(sums);
    sum %= kBase;
    weighted_sum %= kBase;
    data += block;
    size -= block;
  }
#endif
  while (size > 0) {
    const size_t block = std::min(size, kBlock);
    for (size_t i = 0; i < block; ++i) {
      sum += data[i];
      weighted_sum += sum;
    }
    sum %= kBase;
    weighted_sum %= kBase;
    data += block;
    size -= block;
  }
  return static_cast<uint32_t>(weighted_sum << 16 | sum);
}

}  // namespace unet
