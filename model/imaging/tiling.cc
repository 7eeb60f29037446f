#include "model/imaging/tiling.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

// One axis of a plan.
struct AxisPlan {
  int tile = 0;    // input side of every tile
  int stride = 0;  // written by each but the last
  int count = 0;
};

AxisPlan PlanAxis(int64_t side, int tile_side, int margin, int levels) {
  const int grid = ValidInputSides(levels).step;
  const int64_t whole = NextValidInputSide(side + 2 * int64_t{margin}, levels);
  const int tile = static_cast<int>(NextValidInputSide(
      std::max<int64_t>(tile_side, 2 * margin + grid), levels));
  if (whole <= tile) {
    return {static_cast<int>(whole), static_cast<int>(side), 1};
  }
  const int output = tile - 2 * margin;
  const int stride = output / grid * grid;
  const int64_t count = 1 + (side - output + stride - 1) / stride;
  return {tile, stride, static_cast<int>(count)};
}

}  // namespace

InputWindow TilePlan::Window(int64_t index) const {
  const int row = static_cast<int>(index / cols);
  const int col = static_cast<int>(index % cols);
  InputWindow window;
  window.written_top = row * stride_y;
  window.written_left = col * stride_x;
  window.written_height =
      row == rows - 1 ? image_height - window.written_top : stride_y;
  window.written_width =
      col == cols - 1 ? image_width - window.written_left : stride_x;
  window.input_top = window.written_top - margin;
  window.input_left = window.written_left - margin;
  window.input_height = tile_height;
  window.input_width = tile_width;
  return window;
}

double TilePlan::Efficiency() const {
  const double computed = static_cast<double>(tiles()) *
                          (tile_height - 2 * margin) *
                          (tile_width - 2 * margin);
  return static_cast<double>(image_height) * image_width / computed;
}

absl::StatusOr<TilePlan> PlanTiles(int64_t height, int64_t width, int tile_side,
                                   const ModelConfig& config) {
  const auto& arch = config.architecture();
  if (arch.retain_dim()) {
    return absl::InvalidArgumentError(
        "tiles and test-time augmentation need a model with unpadded "
        "output; this one stretches its output over its input (retain_dim)");
  }
  if (height < 1 || width < 1) {
    return absl::InvalidArgumentError("an empty image has no tiles");
  }
  const int levels = arch.channels_size();
  const int margin = ContextMargin(levels);
  const AxisPlan y = PlanAxis(height, tile_side, margin, levels);
  const AxisPlan x = PlanAxis(width, tile_side, margin, levels);
  TilePlan plan;
  plan.image_height = static_cast<int>(height);
  plan.image_width = static_cast<int>(width);
  plan.tile_height = y.tile;
  plan.tile_width = x.tile;
  plan.stride_y = y.stride;
  plan.stride_x = x.stride;
  plan.rows = y.count;
  plan.cols = x.count;
  plan.margin = margin;
  return plan;
}

}  // namespace unet
