#ifndef MODEL_IMAGING_TILING_H_
#define MODEL_IMAGING_TILING_H_

// The paper's overlap-tile strategy, exact: an image of any size is cut into
// tiles of one valid input size whose outputs abut, while their inputs
// overlap by twice the context margin and reach into the mirrored border.
//
// With unpadded convolutions a tile's output equals the same pixels of one
// pass over the whole mirrored image, provided every tile starts on the
// pooling grid of that pass: a multiple of 2^(levels - 1) pixels (16 for
// the seed) from its origin. A tile's output side, input less twice the
// margin, is never such a multiple (388 for 572), so tiles advance by the
// largest multiple that fits (384) and the last along each axis writes what
// is left. The tiled mask then equals the whole-image mask, and memory
// grows with the tiles in flight, not with the image.

#include <cstdint>

#include "absl/status/statusor.h"
#include "model/imaging/preprocess.h"
#include "model/model_config.h"

namespace unet {

struct TilePlan {
  int image_height = 0, image_width = 0;
  int tile_height = 0, tile_width = 0;  // every tile's network input
  // Image pixels each tile but the last along an axis writes.
  int stride_y = 0, stride_x = 0;
  int rows = 0, cols = 0;
  int margin = 0;  // the context margin

  int64_t tiles() const { return int64_t{rows} * cols; }
  // Returns tile `index`'s window (row-major order).
  InputWindow Window(int64_t index) const;
  // Image pixels written over network output pixels computed (<= 1).
  double Efficiency() const;
};

// Plans the tiles of a `height` x `width` image for `config`'s model with
// tiles of `tile_side` input pixels, rounded up to a valid size that writes
// at least one pooling cell; an axis the whole mirrored image spans in less
// takes one tile of that size instead. INVALID_ARGUMENT for a retain_dim
// model, whose output is stretched over its input and cannot be tiled
// exactly.
absl::StatusOr<TilePlan> PlanTiles(int64_t height, int64_t width, int tile_side,
                                   const ModelConfig& config);

}  // namespace unet

#endif  // MODEL_IMAGING_TILING_H_
