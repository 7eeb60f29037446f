#include "server/engine/inference_engine.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace unet {
namespace {

// (N, C, H, W) logits in NCHW, and the same values channels-last.
struct Logits {
  std::array<int64_t, 4> shape;
  std::vector<float> nchw, nhwc;

  explicit Logits(std::array<int64_t, 4> dims) : shape(dims) {
    nchw.resize(dims[0] * dims[1] * dims[2] * dims[3]);
    nhwc.resize(nchw.size());
  }
  float& At(int64_t n, int64_t c, int64_t y, int64_t x) {
    return nchw[((n * shape[1] + c) * shape[2] + y) * shape[3] + x];
  }
  void Relayout() {
    for (int64_t n = 0; n < shape[0]; ++n)
      for (int64_t c = 0; c < shape[1]; ++c)
        for (int64_t y = 0; y < shape[2]; ++y)
          for (int64_t x = 0; x < shape[3]; ++x)
            nhwc[((n * shape[2] + y) * shape[3] + x) * shape[1] + c] =
                At(n, c, y, x);
  }
  std::array<int64_t, 4> NchwStrides() const {
    return {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
  }
  std::array<int64_t, 4> NhwcStrides() const {
    return {shape[1] * shape[2] * shape[3], 1, shape[3] * shape[1], shape[1]};
  }
};

TEST(ArgMaxOverClassesTest, PicksTheLargestClassInEitherLayout) {
  for (int64_t classes : {1, 2, 3, 7}) {
    Logits logits({2, classes, 5, 9});
    std::mt19937 random(static_cast<unsigned>(classes));
    std::normal_distribution<float> normal;
    for (float& value : logits.nchw) value = normal(random);
    logits.Relayout();
    const LabelTensor nchw = ArgMaxOverClasses(logits.nchw.data(), logits.shape,
                                               logits.NchwStrides());
    const LabelTensor nhwc = ArgMaxOverClasses(logits.nhwc.data(), logits.shape,
                                               logits.NhwcStrides());
    ASSERT_EQ(nchw.shape, (std::vector<int64_t>{2, 5, 9}));
    EXPECT_EQ(nchw.values, nhwc.values);
    size_t at = 0;
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t y = 0; y < 5; ++y) {
        for (int64_t x = 0; x < 9; ++x, ++at) {
          const int label = nchw.values[at];
          ASSERT_LT(label, classes);
          for (int64_t c = 0; c < classes; ++c) {
            EXPECT_LE(logits.At(n, c, y, x), logits.At(n, label, y, x));
          }
        }
      }
    }
  }
}

// Rows made in parts, as a worker's intra-op threads make them, add up to
// the whole output, across the images' boundary too.
TEST(ArgMaxOverClassesTest, RowsMadeInPartsAreTheWhole) {
  Logits logits({3, 3, 7, 4});
  std::mt19937 random(11);
  std::normal_distribution<float> normal;
  for (float& value : logits.nchw) value = normal(random);
  const LabelTensor whole =
      ArgMaxOverClasses(logits.nchw.data(), logits.shape, logits.NchwStrides());
  for (int64_t cut : {1, 5, 7, 10, 20}) {
    std::vector<uint8_t> parts(whole.values.size(), 255);
    ArgMaxRows(logits.nchw.data(), logits.shape, logits.NchwStrides(), 0, cut,
               parts.data());
    ArgMaxRows(logits.nchw.data(), logits.shape, logits.NchwStrides(), cut,
               3 * 7, parts.data());
    EXPECT_EQ(parts, whole.values) << cut;
  }
}

// As LibTorch's argmax(1), so that a pixel gets the same class on a GPU
// (where argmax runs) and on the host.
TEST(ArgMaxOverClassesTest, TiesGoToTheLowerClassAndTheFirstNaNWins) {
  Logits logits({1, 3, 1, 5});
  const float nan = std::nanf("");
  const float pixels[5][3] = {
      {1, 1, 1},      // tie: 0
      {0, 2, 2},      // tie: 1
      {nan, 5, 9},    // NaN first: 0
      {1, nan, nan},  // the first NaN: 1
      {1, 3, nan},    // NaN last: 2
  };
  for (int x = 0; x < 5; ++x) {
    for (int c = 0; c < 3; ++c) logits.At(0, c, 0, x) = pixels[x][c];
  }
  logits.Relayout();
  const std::vector<uint8_t> expected = {0, 1, 0, 1, 2};
  EXPECT_EQ(
      ArgMaxOverClasses(logits.nchw.data(), logits.shape, logits.NchwStrides())
          .values,
      expected);
  EXPECT_EQ(
      ArgMaxOverClasses(logits.nhwc.data(), logits.shape, logits.NhwcStrides())
          .values,
      expected);
}

// Two classes, as the vector lanes take four pixels at a time: ties, NaNs
// on either side, both, and infinities, at every place in a group of four
// and in the tail, in either layout.
TEST(ArgMaxOverClassesTest, TwoClassesRankAsOneClassAtATime) {
  const float nan = std::nanf(""), inf = INFINITY;
  const float pairs[][2] = {{1, 1},    {1, 2},     {2, 1},    {nan, 3},
                            {3, nan},  {nan, nan}, {-inf, 0}, {inf, inf},
                            {0, -0.f}, {-1, inf},  {inf, nan}};
  constexpr int kPairs = sizeof(pairs) / sizeof(pairs[0]);
  for (int width : {1, 4, 7, 11, 13}) {
    Logits logits({1, 2, 3, width});
    std::vector<uint8_t> expected;
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < width; ++x) {
        const float* pair = pairs[(x + 5 * y) % kPairs];
        logits.At(0, 0, y, x) = pair[0];
        logits.At(0, 1, y, x) = pair[1];
        const bool foreground =
            pair[1] > pair[0] || (std::isnan(pair[1]) && !std::isnan(pair[0]));
        expected.push_back(foreground);
      }
    }
    logits.Relayout();
    EXPECT_EQ(ArgMaxOverClasses(logits.nchw.data(), logits.shape,
                                logits.NchwStrides())
                  .values,
              expected)
        << width;
    EXPECT_EQ(ArgMaxOverClasses(logits.nhwc.data(), logits.shape,
                                logits.NhwcStrides())
                  .values,
              expected)
        << width;
  }
}

}  // namespace
}  // namespace unet
