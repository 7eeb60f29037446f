#include "model/unet.h"

#include "gtest/gtest.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

UNetOptions Narrow(int width) {
  UNetOptions options;
  options.channels = {width, 2 * width, 4 * width, 8 * width, 16 * width};
  return options;
}

int64_t ParameterCount(UNet& net) {
  int64_t count = 0;
  for (const auto& p : net->parameters()) count += p.numel();
  return count;
}

TEST(UNetTest, SeedMaps572To388) {
  torch::manual_seed(0);
  UNet net(Narrow(4));
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor out = net(torch::rand({2, 1, 572, 572}));
  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{2, 2, 388, 388}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

TEST(UNetTest, FullWidthSeedHas23ConvolutionsAnd31MParameters) {
  UNet net;  // the paper's 64..1024 channels
  int convolutions = 0;
  for (const auto& module : net->modules(/*include_self=*/false)) {
    if (module->as<torch::nn::Conv2d>() ||
        module->as<torch::nn::ConvTranspose2d>()) {
      ++convolutions;
    }
  }
  EXPECT_EQ(convolutions, 23);
  EXPECT_NEAR(ParameterCount(net) / 1e6, 31.0, 0.1);
}

TEST(UNetTest, OutputMatchesGeometryForEveryValidSize) {
  UNet net(Narrow(2));
  net->eval();
  torch::NoGradGuard no_grad;
  const ValidSides sides = ValidInputSides(5);
  for (int k = 0; k < 4; ++k) {
    const int64_t h = sides.minimum + k * sides.step;
    const int64_t w = sides.minimum + (3 - k) * sides.step;  // not square
    const torch::Tensor out = net(torch::zeros({1, 1, h, w}));
    EXPECT_EQ(out.size(2), *OutputSide(h, 5));
    EXPECT_EQ(out.size(3), *OutputSide(w, 5));
  }
}

TEST(UNetTest, ChannelsAndClassesAreConfigurable) {
  UNetOptions options;
  options.input_channels = 3;
  options.num_classes = 5;
  options.channels = {4, 8, 16};
  UNet net(options);
  net->eval();
  torch::NoGradGuard no_grad;
  const int64_t side = ValidInputSides(3).minimum;
  const torch::Tensor out = net(torch::rand({1, 3, side, side}));
  EXPECT_EQ(out.size(1), 5);
  EXPECT_EQ(out.size(2), side - 2 * ContextMargin(3));
}

TEST(UNetTest, RetainDimGivesLogitsAtTheInputSize) {
  UNetOptions options = Narrow(2);
  options.retain_dim = true;
  UNet net(options);
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor out = net(torch::rand({1, 1, 572, 572}));
  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{1, 2, 572, 572}));
}

TEST(UNetTest, InitialisationFollowsThePaper) {
  // Weights ~ N(0, 2 / fan_in); encoder.1.conv1 maps 64 channels to 128 with
  // 3x3 kernels: fan_in = 64 * 9.
  torch::manual_seed(0);
  UNet net;
  const torch::Tensor weight =
      net->named_parameters()["encoder.1.conv1.weight"];  // 64 -> 128
  const double expected_std = std::sqrt(2.0 / (64 * 9));
  EXPECT_NEAR(weight.std().item<double>(), expected_std, 0.05 * expected_std);
  EXPECT_EQ(net->named_parameters()["head.bias"].abs().sum().item<double>(), 0);
}

TEST(UNetTest, SameSeedSameWeights) {
  torch::manual_seed(7);
  UNet a(Narrow(2));
  torch::manual_seed(7);
  UNet b(Narrow(2));
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), b->named_parameters()[item.key()]))
        << item.key();
  }
}

TEST(UNetTest, InferenceOnCpuGivesTheLogitsOfTheTrainingPath) {
  // Without gradients the up-convolutions and the head run as oneDNN 1x1
  // convolutions and each ReLU is fused into its convolution; with them,
  // LibTorch's own modules run.
  torch::manual_seed(3);
  UNet net(Narrow(4));
  net->eval();
  // Non-zero biases, so that their placement is checked too.
  for (auto& p : net->parameters()) {
    if (p.dim() == 1) p.data().uniform_(-0.5, 0.5);
  }
  const torch::Tensor input = torch::rand({2, 1, 204, 220});
  const torch::Tensor with_modules = net(input).detach();
  for (const bool channels_last : {false, true}) {
    const torch::Tensor x =
        channels_last ? input.contiguous(torch::MemoryFormat::ChannelsLast)
                      : input;
    for (int threads : {1, 2}) {
      torch::set_num_threads(threads);
      c10::InferenceMode inference;
      const torch::Tensor one_by_one = net(x);
      EXPECT_EQ(one_by_one.sizes(), with_modules.sizes());
      EXPECT_LT((one_by_one - with_modules).abs().max().item<float>(), 1e-4)
          << threads << " threads, channels-last " << channels_last;
    }
  }
}

}  // namespace
}  // namespace unet
