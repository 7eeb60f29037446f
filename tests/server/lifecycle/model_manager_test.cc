#include "server/lifecycle/model_manager.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "model/model_repository.h"
#include "tests/server/fake_engine.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

class ModelManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::FreshTestDir(); }

  // Rewrites `version`'s weights as `weights`, which a test gives a new size
  // so that the change shows even within one mtime tick.
  void Rewrite(const std::string& name, int version,
               const std::string& weights) {
    std::ofstream(root_ / name / std::to_string(version) / kWeightsFile)
        << weights;
  }

  int Loads(const std::string& name, int version) const {
    return std::count(loaded_.begin(), loaded_.end(),
                      root_ / name / std::to_string(version));
  }

  // Returns the message of `version`'s status.
  std::string Message(const ModelManager& manager, const std::string& name,
                      int64_t version) const {
    for (const auto& v : manager.Versions(name)) {
      if (v.version() == version) return v.message();
    }
    return "";
  }

  // Writes a version whose model.pt holds `weights` ("bad" fails to load).
  void MakeVersion(const std::string& name, int version,
                   const std::string& weights = "good") {
    const fs::path dir = root_ / name / std::to_string(version);
    fs::create_directories(dir);
    std::ofstream(dir / kWeightsFile) << weights;
    std::ofstream(dir / kConfigFile)
        << ModelConfigToJson(DefaultModelConfig(1, 2, {2, 4, 8, 16, 32}));
  }

  ModelManager Manager(const std::string& default_model = "",
                       VersionPins pins = {}) {
    return ModelManager(
        root_, default_model,
        [this](const fs::path& dir, const ModelConfig&,
               int slot) -> absl::StatusOr<std::unique_ptr<InferenceEngine>> {
          if (on_load_) on_load_(dir);
          std::ifstream weights(dir / kWeightsFile);
          std::string contents;
          weights >> contents;
          if (slot == 0) loaded_.push_back(dir);
          if (contents == "bad") return absl::DataLossError("corrupt");
          const auto error = errors_.find(dir);
          if (error != errors_.end()) return error->second;
          return std::make_unique<FakeEngine>();
        },
        /*slots=*/2, metrics_, std::move(pins), [this] { return now_; });
  }

  fs::path root_;
  ServerMetrics metrics_;
  std::vector<fs::path> loaded_;
  // Version directory -> the error its loads fail with.
  std::map<fs::path, absl::Status> errors_;
  std::function<void(const fs::path&)> on_load_;  // runs at each engine load
  // An hour ahead, so that the files a test writes are not fresh unless it
  // sets the clock back to the real time.
  absl::Time now_ = absl::Now() + absl::Hours(1);
};

TEST_F(ModelManagerTest, LoadsTheNewestVersionOfEachModel) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 3);
  MakeVersion("other", 2);
  ModelManager manager = Manager("unet");
  ASSERT_TRUE(manager.LoadAll().ok());
  const auto unet = manager.Find("", 0);
  ASSERT_TRUE(unet.ok()) << unet.status();
  EXPECT_EQ((*unet)->name, "unet");
  EXPECT_EQ((*unet)->version, 3);
  EXPECT_EQ((*manager.Find("other", 0))->version, 2);
  EXPECT_EQ((*manager.Find("unet", 3))->version, 3);
  EXPECT_EQ(loaded_.size(), 2u);           // version 1 was never loaded
  EXPECT_EQ((*unet)->engines.size(), 2u);  // one per slot
  EXPECT_EQ((*unet)->devices(), "fake");
}

TEST_F(ModelManagerTest, FallsBackToAnOlderVersionWhenTheNewestFails) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2, "bad");
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ((*manager.Find("", 0))->version, 1);
}

TEST_F(ModelManagerTest, UnknownModelOrVersionIsNotFound) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ(manager.Find("nope", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.Find("unet", 7).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, TheOnlyModelIsTheDefault) {
  MakeVersion("solo", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ(manager.default_model(), "solo");
}

TEST_F(ModelManagerTest, SeveralModelsNeedANamedDefault) {
  MakeVersion("a", 1);
  MakeVersion("b", 1);
  EXPECT_EQ(Manager().LoadAll().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelManagerTest, FailsWhenTheDefaultModelCannotLoad) {
  MakeVersion("unet", 1, "bad");
  EXPECT_EQ(Manager().LoadAll().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Manager("absent").LoadAll().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, CountsLoadsAndFailuresInMetrics) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2, "bad");
  ASSERT_TRUE(Manager().LoadAll().ok());
  const std::string text = metrics_.Scrape({});
  EXPECT_NE(
      text.find("segmentation_model_load_failures_total{model=\"unet\"} 1"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("segmentation_model_version_info{device=\"fake\",format="
                      "\"libtorch\",model=\"unet\",version=\"1\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("segmentation_model_load_duration_seconds_count{model="
                      "\"unet\"} 1"),
            std::string::npos);
}

TEST_F(ModelManagerTest, IsUnavailableUntilLoaded) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager("unet");
  EXPECT_EQ(manager.Find("", 0).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_TRUE(manager.Find("", 0).ok());
}

using State = VersionStatus::State;

std::map<int64_t, State> States(const ModelManager& manager,
                                const std::string& name) {
  std::map<int64_t, State> states;
  for (const auto& v : manager.Versions(name)) states[v.version()] = v.state();
  return states;
}

TEST_F(ModelManagerTest, ReconcileSwapsInANewVersionAndReleasesTheOld) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  std::shared_ptr<const LoadedModel> in_flight = *manager.Find("", 0);
  std::weak_ptr<const LoadedModel> old_version = in_flight;

  MakeVersion("unet", 2);
  manager.Reconcile();
  EXPECT_EQ((*manager.Find("", 0))->version, 2);
  EXPECT_EQ(manager.Find("unet", 1).status().code(),
            absl::StatusCode::kNotFound);
  // A request admitted with version 1 still holds it...
  EXPECT_EQ(in_flight->version, 1);
  EXPECT_FALSE(old_version.expired());
  // ...and it is freed after that request.
  in_flight.reset();
  EXPECT_TRUE(old_version.expired());
  EXPECT_EQ(States(manager, "unet"),
            (std::map<int64_t, State>{{1, VersionStatus::UNLOADED},
                                      {2, VersionStatus::AVAILABLE}}));
}

TEST_F(ModelManagerTest, ABadVersionIsSkippedOnceAndTheGoodOneServes) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  MakeVersion("unet", 2, "bad");
  manager.Reconcile();
  manager.Reconcile();
  EXPECT_EQ((*manager.Find("", 0))->version, 1);
  EXPECT_EQ(States(manager, "unet")[2], VersionStatus::FAILED);
  // Tried once: the first load of v1 and v2 on two slots, and one failure.
  EXPECT_EQ(std::count(loaded_.begin(), loaded_.end(), root_ / "unet" / "2"),
            1);
  EXPECT_NE(metrics_.Scrape({}).find(
                "segmentation_model_load_failures_total{model=\"unet\"} 1"),
            std::string::npos);
}

TEST_F(ModelManagerTest, ATransientFailureIsRetriedAfterItsBackoff) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  const fs::path v2 = root_ / "unet" / "2";
  errors_[v2] = absl::UnavailableError("I/O error");
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ((*manager.Find("", 0))->version, 1);
  EXPECT_EQ(States(manager, "unet")[2], VersionStatus::FAILED);
  EXPECT_NE(Message(manager, "unet", 2).find("transient, retrying in 1s"),
            std::string::npos)
      << Message(manager, "unet", 2);

  errors_.erase(v2);  // the I/O error passes
  now_ += kFirstRetryBackoff - absl::Milliseconds(1);
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 1);  // still waiting
  now_ += absl::Milliseconds(1);
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 2);
  EXPECT_EQ((*manager.Find("", 0))->version, 2);
  EXPECT_EQ(States(manager, "unet"),
            (std::map<int64_t, State>{{1, VersionStatus::UNLOADED},
                                      {2, VersionStatus::AVAILABLE}}));
}

TEST_F(ModelManagerTest, ATransientFailureIsRetriedAtOnceWhenItsFilesChange) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  const fs::path v2 = root_ / "unet" / "2";
  errors_[v2] = absl::UnavailableError("model.pt is missing");
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 1);

  errors_.erase(v2);
  Rewrite("unet", 2, "good weights");  // no time passes
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 2);
  EXPECT_EQ((*manager.Find("", 0))->version, 2);
}

TEST_F(ModelManagerTest, OutOfMemoryKeepsTheOldVersionAndRetriesTheNewOne) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  std::shared_ptr<const LoadedModel> in_flight = *manager.Find("", 0);

  // Warming up version 2 beside version 1 runs out of device memory.
  MakeVersion("unet", 2);
  const fs::path v2 = root_ / "unet" / "2";
  errors_[v2] = absl::ResourceExhaustedError("CUDA out of memory");
  manager.Reconcile();
  EXPECT_EQ((*manager.Find("", 0))->version, 1);
  EXPECT_EQ(States(manager, "unet"),
            (std::map<int64_t, State>{{1, VersionStatus::AVAILABLE},
                                      {2, VersionStatus::FAILED}}));
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 1);

  // Memory is freed (say the requests on version 1 finished).
  in_flight.reset();
  errors_.erase(v2);
  now_ += kFirstRetryBackoff;
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 2);
  EXPECT_EQ((*manager.Find("", 0))->version, 2);
  EXPECT_EQ(States(manager, "unet"),
            (std::map<int64_t, State>{{1, VersionStatus::UNLOADED},
                                      {2, VersionStatus::AVAILABLE}}));
}

TEST_F(ModelManagerTest, APermanentFailureStaysFailedUntilItsFilesChange) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  const fs::path v2 = root_ / "unet" / "2";
  errors_[v2] = absl::FailedPreconditionError("bad weights");
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_NE(Message(manager, "unet", 2).find("permanent"), std::string::npos)
      << Message(manager, "unet", 2);
  for (int i = 0; i < 20; ++i) {
    now_ += kMaxRetryBackoff;
    manager.Reconcile();
  }
  EXPECT_EQ(Loads("unet", 2), 1);
  EXPECT_EQ(States(manager, "unet")[2], VersionStatus::FAILED);
  EXPECT_EQ((*manager.Find("", 0))->version, 1);

  // The weights are fixed in place.
  errors_.erase(v2);
  Rewrite("unet", 2, "fixed weights");
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 2);
  EXPECT_EQ((*manager.Find("", 0))->version, 2);
}

TEST_F(ModelManagerTest, ABadModelJsonIsPermanentAMissingOneTransient) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  MakeVersion("unet", 3, "bad");
  MakeVersion("unet", 4);
  std::ofstream(root_ / "unet" / "4" / kConfigFile) << "{not json";
  // Version 2's model.json vanishes between the scan and its read (a rewrite
  // under way): an I/O error that even root gets.
  on_load_ = [&](const fs::path& dir) {
    if (dir == root_ / "unet" / "3") fs::remove(root_ / "unet/2" / kConfigFile);
  };
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ((*manager.Find("", 0))->version, 1);
  EXPECT_NE(Message(manager, "unet", 4).find("permanent"), std::string::npos)
      << Message(manager, "unet", 4);
  EXPECT_NE(Message(manager, "unet", 3).find("permanent"), std::string::npos)
      << Message(manager, "unet", 3);
  EXPECT_NE(Message(manager, "unet", 2).find("transient"), std::string::npos)
      << Message(manager, "unet", 2);
}

TEST_F(ModelManagerTest, AFreshVersionThatFailsIsTreatedAsTransient) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2, "bad");  // perhaps still being copied in
  now_ = absl::Now();
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_NE(Message(manager, "unet", 2).find("transient"), std::string::npos)
      << Message(manager, "unet", 2);
  now_ += kFirstRetryBackoff;
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 2);
  // Once the files have settled, the same error is permanent.
  now_ += kSettleWindow;
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 3);
  EXPECT_NE(Message(manager, "unet", 2).find("permanent"), std::string::npos)
      << Message(manager, "unet", 2);
  now_ += kMaxRetryBackoff;
  manager.Reconcile();
  EXPECT_EQ(Loads("unet", 2), 3);
}

TEST_F(ModelManagerTest, TheBackoffDoublesUpToItsCap) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  errors_[root_ / "unet" / "2"] = absl::UnavailableError("I/O error");
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::Duration backoff = kFirstRetryBackoff;
  for (int failures = 1; failures < 15; ++failures) {
    ASSERT_EQ(Loads("unet", 2), failures);
    ASSERT_NE(
        Message(manager, "unet", 2)
            .find(absl::StrCat("retrying in ", absl::FormatDuration(backoff))),
        std::string::npos)
        << Message(manager, "unet", 2);
    now_ += backoff - absl::Milliseconds(1);
    manager.Reconcile();
    ASSERT_EQ(Loads("unet", 2), failures);  // not yet
    now_ += absl::Milliseconds(1);
    manager.Reconcile();
    backoff = std::min(2 * backoff, kMaxRetryBackoff);
  }
  EXPECT_EQ(backoff, kMaxRetryBackoff);
  EXPECT_NE(Message(manager, "unet", 2).find("retrying in 5m"),
            std::string::npos);
}

TEST_F(ModelManagerTest, AnUnreadableRootUnloadsNothing) {
  MakeVersion("unet", 1);
  ModelManager manager = Manager();
  ASSERT_TRUE(manager.LoadAll().ok());
  fs::rename(root_, root_.string() + ".away");  // the mount blinks
  manager.Reconcile();
  EXPECT_TRUE(manager.Find("", 0).ok());
  fs::rename(root_.string() + ".away", root_);
  fs::remove_all(root_ / "unet");  // every version vanished
  manager.Reconcile();
  EXPECT_TRUE(manager.Find("", 0).ok());
}

TEST_F(ModelManagerTest, PinnedVersionsAreServedTogether) {
  MakeVersion("unet", 1);
  MakeVersion("unet", 2);
  MakeVersion("unet", 3);
  ModelManager manager = Manager("", {{"unet", {1, 2}}});
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ((*manager.Find("unet", 1))->version, 1);
  EXPECT_EQ((*manager.Find("unet", 2))->version, 2);
  EXPECT_EQ((*manager.Find("unet", 0))->version, 2);  // newest of the pins
  EXPECT_FALSE(manager.Find("unet", 3).ok());
}

TEST_F(ModelManagerTest, MissingRootIsAnError) {
  ModelManager manager(root_ / "absent", "", nullptr, 1, metrics_);
  EXPECT_EQ(manager.LoadAll().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace unet
