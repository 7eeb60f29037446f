#include "model/model_writer.h"

#include "gtest/gtest.h"
#include "model/model_repository.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

class ModelWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::FreshTestDir(); }

  UNet SmallNet() {
    UNetOptions options;
    options.channels = {2, 4};
    return UNet(options);
  }

  fs::path root_;
};

TEST_F(ModelWriterTest, WritesACompleteVersionAndNothingElse) {
  UNet net = SmallNet();
  const auto dir = WriteModelVersion(root_, "unet", 1, net,
                                     DefaultModelConfig(1, 2, {2, 4}));
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, root_ / "unet" / "1");
  EXPECT_TRUE(fs::is_regular_file(*dir / kWeightsFile));
  const auto config = ReadModelConfig(*dir / kConfigFile);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->format(), kFormatLibTorch);
  // No staging directory is left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e :
       fs::directory_iterator(root_ / "unet")) {
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(ModelWriterTest, WeightsRoundTrip) {
  UNet net = SmallNet();
  ASSERT_TRUE(
      WriteModelVersion(root_, "unet", 1, net, DefaultModelConfig(1, 2, {2, 4}))
          .ok());
  UNet loaded = SmallNet();
  torch::load(loaded, (root_ / "unet/1" / kWeightsFile).string());
  for (const auto& item : net->named_parameters()) {
    EXPECT_TRUE(
        torch::equal(item.value(), loaded->named_parameters()[item.key()]));
  }
}

TEST_F(ModelWriterTest, HalfPrecisionStorageRoundsTheWeightsOnly) {
  UNetOptions options;
  options.channels = {8, 16, 32};
  const ModelConfig fp32 = DefaultModelConfig(1, 2, {8, 16, 32});
  ModelConfig fp16 = fp32;
  fp16.set_weights_precision("fp16");
  UNet net(options);
  const auto before = net->named_parameters().values();
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 1, net, fp32).ok());
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 2, net, fp16).ok());
  // The caller's net is untouched.
  const auto after = net->named_parameters().values();
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(before[i], after[i]));
  }
  const auto full = fs::file_size(root_ / "unet/1" / kWeightsFile);
  const auto half = fs::file_size(root_ / "unet/2" / kWeightsFile);
  EXPECT_LT(half, full * 6 / 10);
  // Loaded back as float32, each weight is the original rounded to half.
  UNet loaded(options);
  ASSERT_TRUE(LoadWeights(loaded, root_ / "unet/2" / kWeightsFile).ok());
  for (const auto& item : net->named_parameters()) {
    const torch::Tensor value = loaded->named_parameters()[item.key()];
    EXPECT_EQ(value.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(
        torch::equal(value, item.value().to(torch::kHalf).to(torch::kFloat32)))
        << item.key();
  }
}

TEST_F(ModelWriterTest, NextVersionCountsUp) {
  UNet net = SmallNet();
  const ModelConfig config = DefaultModelConfig(1, 2, {2, 4});
  EXPECT_EQ(*NextVersion(root_, "unet"), 1);
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 1, net, config).ok());
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 5, net, config).ok());
  EXPECT_EQ(*NextVersion(root_, "unet"), 6);
  EXPECT_EQ(*NewestVersion(root_, "unet"), 5);
  EXPECT_EQ(*NextVersion(root_, "other"), 1);
  EXPECT_EQ(*NewestVersion(root_, "other"), 0);
}

TEST_F(ModelWriterTest, KeepsTheOptimizerStateWhenGiven) {
  UNet net = SmallNet();
  torch::optim::Adam adam(net->parameters());
  const ModelConfig config = DefaultModelConfig(1, 2, {2, 4});
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 1, net, config).ok());
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 2, net, config, &adam).ok());
  EXPECT_FALSE(fs::exists(root_ / "unet/1" / kOptimizerFile));
  EXPECT_TRUE(fs::is_regular_file(root_ / "unet/2" / kOptimizerFile));
}

TEST_F(ModelWriterTest, RefusesToOverwriteAVersion) {
  UNet net = SmallNet();
  const ModelConfig config = DefaultModelConfig(1, 2, {2, 4});
  ASSERT_TRUE(WriteModelVersion(root_, "unet", 1, net, config).ok());
  EXPECT_EQ(WriteModelVersion(root_, "unet", 1, net, config).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(ModelWriterTest, RefusesAnInvalidConfig) {
  UNet net = SmallNet();
  ModelConfig config = DefaultModelConfig(1, 2, {2, 4});
  config.clear_class_names();
  EXPECT_EQ(WriteModelVersion(root_, "unet", 1, net, config).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(root_ / "unet" / "1"));
}

}  // namespace
}  // namespace unet
