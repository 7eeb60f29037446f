#include "model/unet_geometry.h"

#include "gtest/gtest.h"

namespace unet {
namespace {

constexpr int kSeedLevels = 5;

TEST(UNetGeometryTest, SeedMaps572To388) {
  EXPECT_EQ(*OutputSide(572, kSeedLevels), 388);
  EXPECT_EQ(ContextMargin(kSeedLevels), 92);
}

TEST(UNetGeometryTest, ValidSidesFollowThePaper) {
  // side = 16 m + 124; the smallest with a non-empty output is 188 (m = 4).
  const ValidSides sides = ValidInputSides(kSeedLevels);
  EXPECT_EQ(sides.minimum, 188);
  EXPECT_EQ(sides.step, 16);
  for (int side = 1; side <= 1000; ++side) {
    const bool expected = side >= 188 && (side - 124) % 16 == 0;
    EXPECT_EQ(OutputSide(side, kSeedLevels).ok(), expected) << side;
    if (expected) EXPECT_EQ(*OutputSide(side, kSeedLevels), side - 184);
  }
}

TEST(UNetGeometryTest, RejectsOddPoolInputsAndEmptyOutputs) {
  EXPECT_EQ(OutputSide(573, kSeedLevels).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OutputSide(140, kSeedLevels).ok());  // pools fine, output empty
  EXPECT_FALSE(OutputSide(0, kSeedLevels).ok());
}

TEST(UNetGeometryTest, NextValidInputSide) {
  EXPECT_EQ(NextValidInputSide(1, kSeedLevels), 188);
  EXPECT_EQ(NextValidInputSide(188, kSeedLevels), 188);
  EXPECT_EQ(NextValidInputSide(189, kSeedLevels), 204);
  EXPECT_EQ(NextValidInputSide(512 + 184, kSeedLevels), 700);
  EXPECT_EQ(NextValidInputSide(572, kSeedLevels), 572);
}

TEST(UNetGeometryTest, ShallowerNetworks) {
  // One level: a single block, 4 pixels lost, every side above 4 is valid.
  EXPECT_EQ(*OutputSide(5, 1), 1);
  EXPECT_EQ(ValidInputSides(1).minimum, 5);
  EXPECT_EQ(ValidInputSides(1).step, 1);
  EXPECT_EQ(ContextMargin(1), 2);
  // Three levels: 2 pools.
  EXPECT_EQ(ValidInputSides(3).step, 4);
  EXPECT_EQ(ContextMargin(3), 20);
}

}  // namespace
}  // namespace unet
