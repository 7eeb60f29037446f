// End to end: versions written into the model root while clients call the
// server are picked up without a failed request; broken versions never
// serve; reloads do not grow the server's memory.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "tests/server/server_process.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::ListModelsRequest;
using segmentation::v1::ListModelsResponse;
using segmentation::v1::ModelInfo;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;
using segmentation::v1::VersionStatus;

class ModelReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::FreshTestDir();
    const std::string command = absl::StrCat(
        UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
        " --model_root ", root_.string(), " --width 8 > /dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0);
    // The files every later version is made of.
    template_ = root_.string() + "_template";
    fs::remove_all(template_);
    fs::copy(root_ / "unet/1", template_);
    auto server = testing::ServerProcess::Start(
        {"--model_root=" + root_.string(), "--device=cpu",
         "--poll_interval_s=1"},
        absl::StrCat(
            ::testing::UnitTest::GetInstance()->current_test_info()->name(),
            ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Writes version `version` as writers must: assembled beside the model,
  // then renamed into place. `weights` replaces model.pt when given.
  void WriteVersion(int version, const std::string* weights = nullptr) {
    const fs::path staging =
        root_ / "unet" / absl::StrCat(".staging-", version);
    fs::create_directories(staging);
    fs::copy_file(template_ / "model.json", staging / "model.json");
    if (weights == nullptr) {
      fs::copy_file(template_ / "model.pt", staging / "model.pt");
    } else {
      std::ofstream(staging / "model.pt", std::ios::binary) << *weights;
    }
    fs::rename(staging, root_ / "unet" / std::to_string(version));
  }

  // Returns the newest version the server serves.
  int64_t ServedVersion() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    ModelInfo info;
    const grpc::Status status =
        Segmentation::NewStub(server_->channel())
            ->GetModelInfo(&context, GetModelInfoRequest(), &info);
    return status.ok() ? info.version() : -1;
  }

  bool WaitForVersion(int64_t version) {
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < give_up) {
      if (ServedVersion() == version) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::map<int64_t, VersionStatus::State> States() {
    grpc::ClientContext context;
    ListModelsResponse response;
    EXPECT_TRUE(Segmentation::NewStub(server_->channel())
                    ->ListModels(&context, ListModelsRequest(), &response)
                    .ok());
    std::map<int64_t, VersionStatus::State> states;
    for (const auto& model : response.models()) {
      for (const auto& v : model.versions()) states[v.version()] = v.state();
    }
    return states;
  }

  double ResidentBytes() {
    std::string body;
    testing::HttpGet(server_->metrics_port(), "/metrics", &body);
    const std::string name = "process_resident_memory_bytes ";
    const size_t at = body.find("\n" + name);
    double value = -1;
    if (at != std::string::npos) {
      absl::SimpleAtod(
          body.substr(at + 1 + name.size(),
                      body.find('\n', at + 1) - at - 1 - name.size()),
          &value);
    }
    return value;
  }

  fs::path root_, template_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(ModelReloadTest, NewVersionsServeWithoutAFailedRequest) {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mutex;
  std::set<int64_t> served;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      auto stub = Segmentation::NewStub(server_->channel());
      SegmentRequest request;
      auto* raw = request.mutable_image()->mutable_raw();
      raw->set_width(64);
      raw->set_height(64);
      raw->set_channels(1);
      raw->set_pixel_type(segmentation::v1::PIXEL_TYPE_UINT8);
      raw->set_data(std::string(64 * 64, '\x40'));
      while (!stop) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
        SegmentResponse response;
        if (stub->Segment(&context, request, &response).ok()) {
          ++ok;
          std::lock_guard<std::mutex> lock(mutex);
          served.insert(response.model_version());
        } else {
          ++failed;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  WriteVersion(2);
  ASSERT_TRUE(WaitForVersion(2)) << server_->log();
  const std::string garbage = "not a TorchScript archive";
  WriteVersion(3, &garbage);  // corrupt
  std::string truncated = testing::ReadFile(template_ / "model.pt");
  truncated.resize(truncated.size() / 2);
  WriteVersion(4, &truncated);               // truncated
  fs::create_directories(root_ / "unet/5");  // half-written: no model.json yet
  fs::copy_file(template_ / "model.pt", root_ / "unet/5/model.pt");
  std::this_thread::sleep_for(std::chrono::seconds(3));  // polls and events
  stop = true;
  for (auto& client : clients) client.join();

  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(served, (std::set<int64_t>{1, 2}));
  EXPECT_EQ(ServedVersion(), 2);
  // Broken versions written just now might still be being written: they are
  // retried until their files have settled (5 s), then stay FAILED.
  auto states = States();
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((states.at(3) != VersionStatus::FAILED ||
          states.at(4) != VersionStatus::FAILED ||
          !absl::StrContains(server_->log(), "transient=false")) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    states = States();
  }
  EXPECT_EQ(states.at(1), VersionStatus::UNLOADED);
  EXPECT_EQ(states.at(2), VersionStatus::AVAILABLE);
  EXPECT_EQ(states.at(3), VersionStatus::FAILED);
  EXPECT_EQ(states.at(4), VersionStatus::FAILED);
  EXPECT_EQ(states.count(5), 0u);  // not a version until model.json lands
}

// The trainer binary, run for a few steps at a tiny width on a served model
// root, writes versions the server picks up and answers with.
TEST_F(ModelReloadTest, ServesWhatTheTrainerWrites) {
  const fs::path data = testing::TinyIsbiDataset(root_.string() + "_data");
  const std::string command = absl::StrCat(
      TRAIN_BIN " --data ", data.string(), " --model_root ", root_.string(),
      " --steps 2 --checkpoint_every 2 --width 2 --tile 188",
      " --validation_images 1 > ", root_.string(), "_train.log");
  ASSERT_EQ(std::system(command.c_str()), 0)
      << testing::ReadFile(root_.string() + "_train.log");
  ASSERT_TRUE(WaitForVersion(2)) << server_->log();

  grpc::ClientContext context;
  SegmentRequest request;
  request.set_model_version(2);
  request.mutable_image()->set_encoded(
      testing::ReadFile(UNET_TEST_DATA_DIR "/isbi_train_0.png"));
  SegmentResponse response;
  const grpc::Status status = Segmentation::NewStub(server_->channel())
                                  ->Segment(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_version(), 2);
  EXPECT_EQ(response.mask().width(), 512u);
  EXPECT_EQ(response.mask().height(), 512u);
}

TEST_F(ModelReloadTest, FiftyReloadsDoNotGrowMemory) {
  double after_warmup = 0;
  for (int version = 2; version <= 51; ++version) {
    WriteVersion(version);
    ASSERT_TRUE(WaitForVersion(version)) << server_->log();
    // Old versions go away once their files do, as a trainer prunes them.
    fs::remove_all(root_ / "unet" / std::to_string(version - 1));
    if (version == 11) after_warmup = ResidentBytes();
  }
  const double after_all = ResidentBytes();
  ASSERT_GT(after_warmup, 0);
  // Each version holds 2 MB of weights; a leak of one per reload would add
  // 80 MB over the last 40 reloads.
  EXPECT_LT(after_all - after_warmup, 20e6)
      << "RSS after 10 reloads " << after_warmup << ", after 50 " << after_all;
}

}  // namespace
}  // namespace unet
