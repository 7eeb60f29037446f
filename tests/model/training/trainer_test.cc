#include "model/training/trainer.h"

#include "gtest/gtest.h"
#include "model/model_config.h"
#include "model/model_repository.h"
#include "server/torch_engine.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

// Two labelled pairs made of the repository's test slice: one to train on,
// one to validate with.
fs::path TinyDataset() {
  const fs::path dir = fs::path(::testing::TempDir()) / "tiny_isbi";
  fs::remove_all(dir);
  for (const char* sub : {"image", "label"}) fs::create_directories(dir / sub);
  for (const char* n : {"0.png", "1.png"}) {
    fs::copy_file(UNET_TEST_DATA_DIR "/isbi_train_0.png", dir / "image" / n);
    fs::copy_file(UNET_TEST_DATA_DIR "/isbi_train_0_label.png",
                  dir / "label" / n);
  }
  return dir;
}

TrainerOptions TinyRun(const fs::path& root) {
  TrainerOptions options;
  options.data = TinyDataset();
  options.model_root = root;
  options.steps = 4;
  options.checkpoint_every = 2;
  options.width = 2;
  options.tile = 188;
  options.validation_images = 1;
  return options;
}

TEST(TrainerTest, AShortRunWritesLoadableVersions) {
  const fs::path root = fs::path(::testing::TempDir()) / "trained_models";
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
}

TEST(TrainerTest, SameSeedSameResult) {
  const fs::path a = fs::path(::testing::TempDir()) / "seed_a";
  const fs::path b = fs::path(::testing::TempDir()) / "seed_b";
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
  TrainerOptions options = TinyRun(fs::path(::testing::TempDir()) / "few");
  options.validation_images = 2;
  EXPECT_EQ(Train(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
