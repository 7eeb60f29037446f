#include "model/training/trainer.h"

#include "gtest/gtest.h"
#include "model/model_config.h"
#include "model/model_repository.h"
#include "model/model_writer.h"
#include "model/unet.h"
#include "server/engine/torch_engine.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

// A run of a few steps writing into `root`, with its data beside `root`.
// Each test uses its own directory: ctest runs them in parallel.
TrainerOptions TinyRun(const fs::path& root) {
  TrainerOptions options;
  options.data = testing::TinyIsbiDataset(root.parent_path() / "tiny_isbi");
  options.model_root = root;
  options.steps = 4;
  options.checkpoint_every = 2;
  options.width = 2;
  options.tile = 188;
  options.validation_images = 1;
  return options;
}

TEST(TrainerTest, AShortRunWritesLoadableVersions) {
  const fs::path root = testing::FreshTestDir() / "models";
  fs::remove_all(root);
  ASSERT_TRUE(Train(TinyRun(root)).ok());
  const auto versions = ScanModelRoot(root);
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);  // steps 2 and 4
  const auto config = ReadModelConfig((*versions)[1].dir / kConfigFile);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->training().step(), 4);
  EXPECT_EQ(config->class_names(0), "cell");
  EXPECT_EQ(config->class_names(1), "membrane");
  const double pixel_error = config->training().metrics().at("pixel_error");
  EXPECT_GE(pixel_error, 0);
  EXPECT_LE(pixel_error, 1);
  EXPECT_GT(config->normalization().std(0), 0);
  // The server's loader takes it: weights match model.json, output finite.
  EXPECT_TRUE(LoadTorchEngine((*versions)[1].dir, *config, {}).ok());
  EXPECT_TRUE(fs::exists(root / "unet" / "training_log.csv"));
  EXPECT_TRUE(fs::exists(root / "unet" / "training_curves.png"));
  EXPECT_TRUE(fs::exists((*versions)[1].dir / kOptimizerFile));
}

// The parameters of a written version.
std::vector<torch::Tensor> Weights(const fs::path& version_dir) {
  const auto config = ReadModelConfig(version_dir / kConfigFile);
  EXPECT_TRUE(config.ok()) << config.status();
  UNet net(OptionsFromArchitecture(config->architecture()));
  EXPECT_TRUE(LoadWeights(net, version_dir / kWeightsFile).ok());
  return net->parameters();
}

TEST(TrainerTest, ResumingTakesTheStepsOfAnUninterruptedRun) {
  const fs::path dir = testing::FreshTestDir();
  const fs::path straight = dir / "straight", resumed = dir / "resumed";
  ASSERT_TRUE(Train(TinyRun(straight)).ok());  // steps 1-4
  TrainerOptions first_half = TinyRun(resumed);
  first_half.steps = 2;
  ASSERT_TRUE(Train(first_half).ok());
  TrainerOptions second_half = TinyRun(resumed);
  second_half.resume = true;
  ASSERT_TRUE(Train(second_half).ok());  // steps 3-4

  const auto config = ReadModelConfig(resumed / "unet/2" / kConfigFile);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->training().step(), 4);
  const auto expected = Weights(straight / "unet/2");
  const auto actual = Weights(resumed / "unet/2");
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(torch::equal(expected[i], actual[i])) << "parameter " << i;
  }
  // (Had the Adam moments restarted from zero, steps 3-4 would differ.)
}

TEST(TrainerTest, ResumeNeedsAVersionWithOptimizerStateBelowTheSteps) {
  const fs::path root = testing::FreshTestDir() / "models";
  fs::create_directories(root);
  TrainerOptions options = TinyRun(root);
  options.resume = true;
  EXPECT_EQ(Train(options).code(), absl::StatusCode::kNotFound);
  options.resume = false;
  ASSERT_TRUE(Train(options).ok());  // versions at steps 2 and 4
  options.resume = true;
  EXPECT_EQ(Train(options).code(), absl::StatusCode::kInvalidArgument);
  options.steps = 6;
  fs::remove(root / "unet/2" / kOptimizerFile);
  EXPECT_EQ(Train(options).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TrainerTest, ATimeLimitEndsTheRunWithAVersionAtThatStep) {
  const fs::path root = testing::FreshTestDir() / "models";
  TrainerOptions options = TinyRun(root);
  options.steps = 1000;
  options.checkpoint_every = 1000;
  options.time_limit = absl::Nanoseconds(1);  // passed after the first step
  ASSERT_TRUE(Train(options).ok());
  const auto versions = ScanModelRoot(root);
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 1u);
  const auto config = ReadModelConfig((*versions)[0].dir / kConfigFile);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->training().step(), 1);
}

TEST(TrainerTest, SameSeedSameResult) {
  const fs::path dir = testing::FreshTestDir();
  const fs::path a = dir / "seed_a", b = dir / "seed_b";
  fs::remove_all(a);
  fs::remove_all(b);
  ASSERT_TRUE(Train(TinyRun(a)).ok());
  ASSERT_TRUE(Train(TinyRun(b)).ok());
  const auto ca = ReadModelConfig(a / "unet/2" / kConfigFile);
  const auto cb = ReadModelConfig(b / "unet/2" / kConfigFile);
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(ca->training().metrics().at("pixel_error"),
            cb->training().metrics().at("pixel_error"));
}

TEST(TrainerTest, RefusesTooFewImagesToValidate) {
  TrainerOptions options = TinyRun(testing::FreshTestDir() / "few");
  options.validation_images = 2;
  EXPECT_EQ(Train(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
