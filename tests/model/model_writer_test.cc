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
