#include "model/imaging/tiling.h"

#include <torch/torch.h>

#include <opencv2/core.hpp>

#include "gtest/gtest.h"
#include "model/unet.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

ModelConfig SeedShapedConfig() {
  ModelConfig config = DefaultModelConfig(1, 2, {2, 4, 8, 16, 32});
  config.mutable_normalization()->set_mean(0, 0.5f);
  config.mutable_normalization()->set_std(0, 0.25f);
  return config;
}

TEST(TilePlanTest, TilesAdvanceOnThePoolingGridAndCoverTheImageOnce) {
  const ModelConfig config = SeedShapedConfig();
  const auto plan = PlanTiles(1000, 613, 572, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tile_height, 572);
  EXPECT_EQ(plan->stride_y, 384);  // of 388 output rows, on the 16-grid
  EXPECT_EQ(plan->rows, 3);        // 384 + 384 + 232
  EXPECT_EQ(plan->cols, 2);        // 384 + 229
  cv::Mat covered = cv::Mat::zeros(1000, 613, CV_32S);
  for (int64_t i = 0; i < plan->tiles(); ++i) {
    const InputWindow w = plan->Window(i);
    EXPECT_EQ((w.input_top + 92) % 16, 0);
    EXPECT_EQ((w.input_left + 92) % 16, 0);
    EXPECT_LE(w.written_height, w.input_height - 184);
    EXPECT_EQ(w.written_top - w.input_top, 92);
    covered(cv::Rect(w.written_left, w.written_top, w.written_width,
                     w.written_height)) += 1;
  }
  double low = 0, high = 0;
  cv::minMaxLoc(covered, &low, &high);
  EXPECT_EQ(low, 1);
  EXPECT_EQ(high, 1);
}

TEST(TilePlanTest, SmallAxesTakeOneTileOfTheWholeImagesInput) {
  const auto plan = PlanTiles(1, 2000000, 572, SeedShapedConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tile_height, 188);  // 1 + 184 -> 188
  EXPECT_EQ(plan->rows, 1);
  EXPECT_EQ(plan->cols, 1 + (2000000 - 388 + 383) / 384);
  EXPECT_GT(plan->Efficiency(), 0.0);
  EXPECT_LT(plan->Efficiency(), 1.0);
  // A tile side too small to write a pooling cell is raised.
  EXPECT_EQ(PlanTiles(5000, 5000, 1, SeedShapedConfig())->tile_height, 204);
}

TEST(TilePlanTest, RetainDimModelsCannotBeTiled) {
  ModelConfig config = SeedShapedConfig();
  config.mutable_architecture()->set_retain_dim(true);
  EXPECT_EQ(PlanTiles(600, 600, 572, config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The logits of `prepared`'s written pixels: classes x height x width, in
// the net's precision.
torch::Tensor WrittenLogits(UNet& net, const PreparedImage& prepared,
                            torch::Dtype dtype) {
  const torch::Tensor input =
      torch::from_blob(
          const_cast<float*>(prepared.chw.data()),
          {1, prepared.channels, prepared.padded_height, prepared.padded_width})
          .to(dtype);
  const torch::Tensor output = net->forward(input)[0];
  const int margin = (prepared.padded_height - output.size(1)) / 2;
  return output.narrow(1, prepared.pad_top - margin, prepared.height)
      .narrow(2, prepared.pad_left - margin, prepared.width);
}

// Returns the largest difference between the tiled and the whole-image
// logits of a random `height` x `width` image, and the largest logit.
std::pair<double, double> TiledAgainstWhole(int height, int width,
                                            int tile_side, torch::Dtype dtype) {
  const ModelConfig config = SeedShapedConfig();
  torch::manual_seed(7);
  UNetOptions options;
  options.channels = {2, 4, 8, 16, 32};
  UNet net(options);
  net->to(dtype);
  net->eval();
  torch::NoGradGuard no_grad;
  cv::Mat image(height, width, CV_8UC1);
  cv::randu(image, 0, 256);

  const auto whole = Preprocess(image, config);
  EXPECT_TRUE(whole.ok()) << whole.status();
  const torch::Tensor expected = WrittenLogits(net, *whole, dtype);

  const auto plan = PlanTiles(height, width, tile_side, config);
  EXPECT_TRUE(plan.ok()) << plan.status();
  torch::Tensor tiled = torch::full_like(expected, NAN);
  for (int64_t i = 0; i < plan->tiles(); ++i) {
    const InputWindow window = plan->Window(i);
    const auto tile = PrepareWindow(image, config, window);
    EXPECT_TRUE(tile.ok()) << tile.status();
    EXPECT_EQ(tile->padded_height, plan->tile_height);
    tiled.narrow(1, window.written_top, window.written_height)
        .narrow(2, window.written_left, window.written_width)
        .copy_(WrittenLogits(net, *tile, dtype));
  }
  EXPECT_FALSE(tiled.isnan().any().item<bool>());
  return {(tiled - expected).abs().max().item<double>(),
          expected.abs().max().item<double>()};
}

class TiledEqualsWholeTest
    : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(TiledEqualsWholeTest, LogitsAgreeWithOnePassOverTheWholeImage) {
  const auto [height, width, tile_side] = GetParam();
  // In double precision what is compared is the geometry alone: any pixel
  // cut, mirrored or placed wrongly differs by far more than 1e-9.
  const auto [double_difference, double_largest] =
      TiledAgainstWhole(height, width, tile_side, torch::kDouble);
  EXPECT_LE(double_difference, 1e-9);
  // In float with LibTorch's own convolutions (im2col and BLAS), every
  // output pixel sums its products in the same order whatever the input's
  // size: the tiled logits are the whole pass's, bit for bit.
  at::globalContext().setUserEnabledMkldnn(false);
  const auto [exact_difference, exact_largest] =
      TiledAgainstWhole(height, width, tile_side, torch::kFloat);
  at::globalContext().setUserEnabledMkldnn(true);
  EXPECT_EQ(exact_difference, 0.0) << "largest logit " << exact_largest;
  // oneDNN (the CPU serving path) picks its kernels and their summation
  // order by shape, so tiles and the whole image round differently: up to
  // 7.5e-5 here, about 40 units in the last place of the largest logit
  // (random weights give logits up to ~30).
  const auto [float_difference, float_largest] =
      TiledAgainstWhole(height, width, tile_side, torch::kFloat);
  EXPECT_LE(float_difference, 1e-5 * std::max(1.0, float_largest))
      << "largest logit " << float_largest;
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, TiledEqualsWholeTest,
    ::testing::Values(std::make_tuple(257, 391, 204),  // sizes of nothing
                      std::make_tuple(1, 700, 204),    // one row
                      std::make_tuple(700, 1, 204),    // one column
                      std::make_tuple(20, 20, 204),    // exactly one tile
                      std::make_tuple(21, 37, 204),    // one more than one
                      std::make_tuple(300, 300, 252)));

}  // namespace
}  // namespace unet
