#include "model/unet_geometry.h"

#include "absl/strings/str_cat.h"

namespace unet {
namespace {

constexpr int kBlockShrink = 4;  // two unpadded 3x3 convolutions

}  // namespace

absl::StatusOr<int> OutputSide(int input_side, int levels) {
  int side = input_side;
  for (int level = 0; level + 1 < levels; ++level) {
    side -= kBlockShrink;
    if (side <= 0 || side % 2 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input side ", input_side, " is not valid for a ",
                       levels, "-level U-Net: a max-pool sees side ", side));
    }
    side /= 2;
  }
  side -= kBlockShrink;  // bottleneck block
  for (int level = 0; level + 1 < levels && side > 0; ++level) {
    side = side * 2 - kBlockShrink;  // up-convolution, then a block
  }
  if (side <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("input side ", input_side,
                                                   " is too small for a ",
                                                   levels, "-level U-Net"));
  }
  return side;
}

ValidSides ValidInputSides(int levels) {
  ValidSides sides;
  sides.step = 1 << (levels - 1);
  sides.minimum = 1;
  while (!OutputSide(sides.minimum, levels).ok()) ++sides.minimum;
  return sides;
}

int64_t NextValidInputSide(int64_t side, int levels) {
  const ValidSides sides = ValidInputSides(levels);
  if (side <= sides.minimum) return sides.minimum;
  const int64_t steps = (side - sides.minimum + sides.step - 1) / sides.step;
  return sides.minimum + steps * sides.step;
}

int ContextMargin(int levels) {
  const int input = ValidInputSides(levels).minimum;
  return (input - *OutputSide(input, levels)) / 2;
}

}  // namespace unet
