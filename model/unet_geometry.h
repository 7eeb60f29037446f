#ifndef MODEL_UNET_GEOMETRY_H_
#define MODEL_UNET_GEOMETRY_H_

// Sizes of the seed U-Net, whose 3x3 convolutions are unpadded ("valid"): each
// block loses 4 pixels per side length and every 2x2 max-pool needs an even
// size. For the seed (5 levels) a 572 input gives a 388 output. These rules
// depend only on the number of levels, not on the channel counts.

#include <cstdint>

#include "absl/status/statusor.h"

namespace unet {

struct ValidSides {
  int minimum = 0;  // smallest input side with a non-empty output
  int step = 0;     // valid sides are minimum + k * step
};

// Returns the output side for `input_side`, or INVALID_ARGUMENT when a
// max-pool would see an odd size or the output would be empty.
absl::StatusOr<int> OutputSide(int input_side, int levels);

// Returns the valid input sides of a U-Net with `levels` levels (>= 1).
ValidSides ValidInputSides(int levels);

// Returns the smallest valid input side that is at least `side`.
int64_t NextValidInputSide(int64_t side, int levels);

// Returns the pixels of context the network consumes on each side: an input
// of side s gives an output of side s - 2 * ContextMargin (92 for the seed).
int ContextMargin(int levels);

}  // namespace unet

#endif  // MODEL_UNET_GEOMETRY_H_
