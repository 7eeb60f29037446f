#include "model/onednn_conv.h"

#include <torch/torch.h>

#include <tuple>

#include "gtest/gtest.h"

namespace unet {
namespace {

namespace F = torch::nn::functional;

class ConvolveReluTest
    : public ::testing::TestWithParam<std::tuple<int, int, int, int, bool>> {};

TEST_P(ConvolveReluTest, EqualsLibTorchsConvolutionThenRelu) {
  if (!HasFusedConvolveRelu()) GTEST_SKIP() << "built without oneDNN";
  const auto [batch, in_channels, out_channels, side, channels_last] =
      GetParam();
  torch::manual_seed(11);
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({batch, in_channels, side, side + 7});
  torch::Tensor weight = torch::randn({out_channels, in_channels, 3, 3});
  if (channels_last) {  // as the engine places a channels-last model
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    weight = weight.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  const torch::Tensor bias = torch::randn({out_channels});

  const torch::Tensor fused = ConvolveRelu(x, weight, bias);
  const torch::Tensor expected =
      torch::relu(F::conv2d(x, weight, F::Conv2dFuncOptions().bias(bias)));
  ASSERT_EQ(fused.sizes(), expected.sizes());
  // Channels-last in, channels-last out, as LibTorch's convolution does; a
  // one-channel image (both layouts) gives channels-last.
  const auto format = channels_last || in_channels == 1
                          ? torch::MemoryFormat::ChannelsLast
                          : torch::MemoryFormat::Contiguous;
  EXPECT_EQ(fused.strides(), expected.contiguous(format).strides());
  // Half the outputs are clamped: the ReLU was applied, not skipped.
  EXPECT_GT((expected == 0).sum().item<int64_t>(), expected.numel() / 4);
  EXPECT_TRUE(torch::allclose(fused, expected, /*rtol=*/1e-5, /*atol=*/1e-5))
      << (fused - expected).abs().max().item<float>();
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvolveReluTest,
    ::testing::Values(std::make_tuple(1, 1, 8, 37, true),  // the first layer
                      std::make_tuple(1, 1, 8, 37, false),
                      std::make_tuple(2, 16, 8, 21, true),  // a batch
                      std::make_tuple(1, 24, 5, 3, true),   // one output pixel
                      std::make_tuple(2, 7, 13, 19, false)));

TEST(ConvolveReluTest, RefusesWhatItCannotRun) {
  if (!HasFusedConvolveRelu()) GTEST_SKIP() << "built without oneDNN";
  const torch::Tensor weight = torch::randn({4, 3, 3, 3});
  const torch::Tensor bias = torch::randn({4});
  EXPECT_THROW(ConvolveRelu(torch::randn({1, 2, 9, 9}), weight, bias),
               c10::Error);  // channels do not match
  EXPECT_THROW(ConvolveRelu(torch::randn({1, 3, 2, 9}), weight, bias),
               c10::Error);  // smaller than the kernel
  EXPECT_THROW(
      ConvolveRelu(torch::randn({1, 3, 9, 9}, torch::kDouble), weight, bias),
      c10::Error);
}

TEST(ConvolveReluTest, CanBeTurnedOffForComparison) {
  const bool built_in = HasFusedConvolveRelu();
  EnableFusedConvolveRelu(false);
  EXPECT_FALSE(HasFusedConvolveRelu());
  EnableFusedConvolveRelu(true);
  EXPECT_EQ(HasFusedConvolveRelu(), built_in);
}

}  // namespace
}  // namespace unet
