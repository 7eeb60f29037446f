#include "server/engine/torch_engine.h"

#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cpu_threads.h"
#include "gtest/gtest.h"
#include "model/model_repository.h"
#include "model/model_writer.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

const std::vector<int> kChannels = {2, 4, 8, 16, 32};

class TorchEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::FreshTestDir(); }

  // Writes a LibTorch version of a small seeded U-Net; returns its directory.
  fs::path WriteLibTorch(const std::function<void(UNet&)>& edit = nullptr) {
    torch::manual_seed(0);
    UNetOptions options;
    options.channels.assign(kChannels.begin(), kChannels.end());
    UNet net(options);
    if (edit) edit(net);
    return *WriteModelVersion(root_, "unet", 1, net,
                              DefaultModelConfig(1, 2, kChannels));
  }

  absl::StatusOr<std::unique_ptr<InferenceEngine>> Load(const fs::path& dir) {
    const auto config = ReadModelConfig(dir / kConfigFile);
    EXPECT_TRUE(config.ok()) << config.status();
    return LoadTorchEngine(dir, *config, EngineOptions());
  }

  fs::path root_;
};

TEST_F(TorchEngineTest, RunsALibTorchCheckpoint) {
  const auto engine = Load(WriteLibTorch());
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->device(), "cpu");
  FloatTensor input{{2, 1, 572, 572}, std::vector<float>(2 * 572 * 572, 0.3f)};
  const auto logits = (*engine)->Forward(input);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->shape, (std::vector<int64_t>{2, 2, 388, 388}));
  EXPECT_EQ(logits->values.size(), 2u * 2 * 388 * 388);
}

TEST_F(TorchEngineTest, RunsATorchScriptExportFromPython) {
  const std::string command = absl::StrCat(
      UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
      " --model_root ", root_.string(), " --name scripted --width 2 --seed 3",
      " > /dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const auto engine = Load(root_ / "scripted" / "1");
  ASSERT_TRUE(engine.ok()) << engine.status();
  FloatTensor input{{1, 1, 204, 188}, std::vector<float>(204 * 188, 0.5f)};
  const auto logits = (*engine)->Forward(input);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->shape, (std::vector<int64_t>{1, 2, 20, 4}));
}

TEST_F(TorchEngineTest, RefusesWeightsOfAnotherArchitecture) {
  const fs::path dir = WriteLibTorch();
  ModelConfig wider = DefaultModelConfig(1, 2, {4, 8, 16, 32, 64});
  std::ofstream(dir / kConfigFile) << ModelConfigToJson(wider);
  EXPECT_EQ(Load(dir).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TorchEngineTest, RefusesACorruptOrTruncatedFile) {
  const fs::path dir = WriteLibTorch();
  const fs::path weights = dir / kWeightsFile;
  const auto size = fs::file_size(weights);
  fs::resize_file(weights, size / 2);
  EXPECT_EQ(Load(dir).status().code(), absl::StatusCode::kFailedPrecondition);
  std::ofstream(weights, std::ios::trunc) << "not a checkpoint";
  EXPECT_EQ(Load(dir).status().code(), absl::StatusCode::kFailedPrecondition);
  // A missing file may still be on its way (or an I/O error pass): the
  // manager retries UNAVAILABLE.
  fs::remove(weights);
  EXPECT_EQ(Load(dir).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TorchEngineTest, RefusesAModelThatGivesNaN) {
  const fs::path dir = WriteLibTorch([](UNet& net) {
    torch::NoGradGuard no_grad;
    net->named_parameters()["head.bias"].fill_(NAN);
  });
  const auto engine = Load(dir);
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(engine.status().message().find("non-finite"), std::string::npos);
}

TEST_F(TorchEngineTest, RefusesAScriptWhoseClassesDisagreeWithModelJson) {
  const std::string command = absl::StrCat(
      UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
      " --model_root ", root_.string(), " --width 2 --class_names a,b,c",
      " > /dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0);
  const fs::path dir = root_ / "unet" / "1";
  auto config = ReadModelConfig(dir / kConfigFile);
  ASSERT_TRUE(config.ok());
  config->mutable_architecture()->set_num_classes(2);
  config->mutable_class_names()->RemoveLast();
  EXPECT_EQ(LoadTorchEngine(dir, *config, EngineOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TorchEngineTest, ChannelsLastGivesTheSameLogits) {
  const fs::path dir = WriteLibTorch();
  const auto config = ReadModelConfig(dir / kConfigFile);
  EngineOptions nchw;
  EngineOptions nhwc;
  nhwc.channels_last = true;
  const auto exact = LoadTorchEngine(dir, *config, nchw);
  const auto fast = LoadTorchEngine(dir, *config, nhwc);
  ASSERT_TRUE(exact.ok()) << exact.status();
  ASSERT_TRUE(fast.ok()) << fast.status();
  FloatTensor input{{1, 1, 188, 204}, std::vector<float>(188 * 204)};
  for (size_t i = 0; i < input.values.size(); ++i) {
    input.values[i] = static_cast<float>(i % 255) / 255.0f;
  }
  const auto a = (*exact)->Forward(input);
  const auto b = (*fast)->Forward(input);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->shape, b->shape);
  double max_error = 0, max_value = 0;
  for (size_t i = 0; i < a->values.size(); ++i) {
    max_error =
        std::max<double>(max_error, std::abs(a->values[i] - b->values[i]));
    max_value = std::max<double>(max_value, std::abs(a->values[i]));
  }
  EXPECT_LT(max_error, 1e-4 * max_value + 1e-5);
}

// The voluntary context switches of this process so far.
long VoluntarySwitches() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_nvcsw;
}

// Once a process holds more OpenMP threads than CPUs, counting every idle
// team, libgomp's threads sleep at a pass's barriers instead of spinning
// (ReleaseIntraOpThreads). A thread that loaded a model, here one that stays
// alive as a server's main thread does, must leave no team behind: a worker's
// two-thread pass then sleeps about once, not about 140 times (measured with
// the shipped model on the two-CPU development machine).
TEST_F(TorchEngineTest, ALoadingThreadLeavesNoTeamToSlowTheWorkers) {
  if (UsableCpus() != 2) GTEST_SKIP() << "the throttling shows on two CPUs";
  const fs::path dir = WriteLibTorch();
  std::unique_ptr<InferenceEngine> engine;
  std::promise<void> loaded, done;
  std::thread loader([&] {
    SetCpuThreads(2);
    auto load = Load(dir);  // checks the model on this thread's team
    ASSERT_TRUE(load.ok()) << load.status();
    engine = *std::move(load);
    loaded.set_value();
    done.get_future().wait();  // alive, as a main thread
  });
  loaded.get_future().wait();
  ASSERT_NE(engine, nullptr);
  std::thread([&] {
    SetCpuThreads(2);
    FloatTensor input{{1, 1, 572, 572}, std::vector<float>(572 * 572, 0.3f)};
    ASSERT_TRUE(engine->Forward(input).ok());  // the team starts
    constexpr int kPasses = 5;
    const long before = VoluntarySwitches();
    for (int i = 0; i < kPasses; ++i) ASSERT_TRUE(engine->Forward(input).ok());
    EXPECT_LT((VoluntarySwitches() - before) / kPasses, 30);
  }).join();
  done.set_value();
  loader.join();
}

TEST(ResolveDevicesTest, NamesDevicesOrRefuses) {
  using Devices = std::vector<std::string>;
  EXPECT_EQ(*ResolveDevices("cpu"), Devices{"cpu"});
  const Devices automatic = *ResolveDevices("");
  ASSERT_EQ(automatic.size(), 1u);
  EXPECT_TRUE(automatic[0] == "cpu" || automatic[0] == "cuda:0");
  EXPECT_EQ(ResolveDevices("gpu").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevices("cuda:x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevices("cpu,cuda:99").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckPrecisionTest, KnowsWhatRunsWhere) {
  EXPECT_TRUE(CheckPrecision("fp32", "cpu").ok());
  EXPECT_TRUE(CheckPrecision("fp16", "cuda:0").ok());
  EXPECT_TRUE(CheckPrecision("bf16", "cuda:1").ok());
  EXPECT_EQ(CheckPrecision("bf16", "cpu").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPrecision("fp16", "cpu").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPrecision("int8", "cuda:0").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace unet
