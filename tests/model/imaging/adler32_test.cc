#include "model/imaging/adler32.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <vector>

namespace unet {
namespace {

uint32_t ZlibAdler32(uint32_t adler, const uint8_t* data, size_t size) {
  return static_cast<uint32_t>(adler32_z(adler, data, size));
}

TEST(Adler32Test, AgreesWithZlibAtEveryLengthOffsetAndStart) {
  std::mt19937 random(5);
  std::vector<uint8_t> bytes(40000);
  for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random());
  for (size_t size :
       {0, 1, 15, 16, 17, 31, 33, 5551, 5552, 5553, 11104, 11105, 39000}) {
    for (size_t offset : {0, 1, 7}) {  // the loads need no alignment
      for (uint32_t start : {1u, 0xfff0fff0u, 0x12345678u % 65521}) {
        EXPECT_EQ(Adler32(start, bytes.data() + offset, size),
                  ZlibAdler32(start, bytes.data() + offset, size))
            << size << " bytes at " << offset << " from " << start;
      }
    }
  }
}

// All bytes 255 and sums near the modulus: the largest a block's 32-bit
// lanes ever hold.
TEST(Adler32Test, AgreesWithZlibOnTheLargestBytes) {
  const std::vector<uint8_t> bytes(1 << 20, 255);
  const uint32_t near_the_top = 65520u << 16 | 65520u;
  EXPECT_EQ(Adler32(near_the_top, bytes.data(), bytes.size()),
            ZlibAdler32(near_the_top, bytes.data(), bytes.size()));
  EXPECT_EQ(Adler32(1, bytes.data(), bytes.size()),
            ZlibAdler32(1, bytes.data(), bytes.size()));
}

}  // namespace
}  // namespace unet
