#include "benchmark/level_runner.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

namespace unet {
namespace {

using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

// Answers every Segment after a few milliseconds, with a fixed timing, and
// counts the calls it has in flight.
class SlowService final : public segmentation::v1::Segmentation::Service {
 public:
  grpc::Status Segment(grpc::ServerContext*, const SegmentRequest*,
                       SegmentResponse* response) override {
    ++in_flight;
    ++calls;
    absl::SleepFor(absl::Milliseconds(5));
    response->mutable_timing()->set_inference_us(4000);
    response->mutable_timing()->set_preprocess_us(700);
    response->mutable_timing()->set_batch_size(1);
    --in_flight;
    return grpc::Status::OK;
  }

  std::atomic<int> in_flight{0}, calls{0};
};

class LevelRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  Target target() const { return {"127.0.0.1:" + std::to_string(port_), {}}; }

  SlowService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(LevelRunnerTest, PausesTheCallersBetweenWindows) {
  LevelOptions options;
  options.concurrency = 4;
  options.seconds = 0.6;
  options.windows = 3;
  std::vector<int> gaps, in_flight, calls_during_gap;
  options.between = [&](int gap) {
    gaps.push_back(gap);
    in_flight.push_back(service_.in_flight);
    const int calls = service_.calls;
    absl::SleepFor(absl::Milliseconds(50));
    calls_during_gap.push_back(service_.calls - calls);
    return absl::OkStatus();
  };
  absl::StatusOr<LevelResult> result =
      RunLevel(target(), SegmentRequest(), options);
  ASSERT_TRUE(result.ok()) << result.status();

  EXPECT_EQ(gaps, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(in_flight, (std::vector<int>{0, 0, 0, 0}));
  EXPECT_EQ(calls_during_gap, (std::vector<int>{0, 0, 0, 0}));
  ASSERT_EQ(result->windows.size(), 3u);
  int completed = 0;
  for (const WindowResult& window : result->windows) {
    EXPECT_GT(window.completed, 0);
    EXPECT_GE(window.p50_ms, 5);
    EXPECT_NEAR(window.seconds, 0.2, 0.05);
    completed += window.completed;
  }
  EXPECT_EQ(result->completed, completed);
  EXPECT_EQ(result->failed, 0);
  EXPECT_NEAR(result->seconds, 0.6, 0.1);
  EXPECT_DOUBLE_EQ(result->inference_ms, 4.0);
  EXPECT_DOUBLE_EQ(result->preprocess_ms, 0.7);
  EXPECT_DOUBLE_EQ(result->mean_batch, 1.0);
}

TEST_F(LevelRunnerTest, WithoutPausesMeasuresOneWindow) {
  LevelOptions options;
  options.concurrency = 2;
  options.seconds = 0.3;
  absl::StatusOr<LevelResult> result =
      RunLevel(target(), SegmentRequest(), options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->windows.size(), 1u);
  EXPECT_GT(result->completed, 10);
  EXPECT_EQ(result->windows[0].completed, result->completed);
}

TEST_F(LevelRunnerTest, AFailingGapEndsTheLevelWithItsError) {
  LevelOptions options;
  options.concurrency = 2;
  options.seconds = 0.3;
  options.windows = 2;
  options.between = [](int gap) {
    return gap == 1 ? absl::InternalError("raw pass failed") : absl::OkStatus();
  };
  EXPECT_EQ(RunLevel(target(), SegmentRequest(), options).status(),
            absl::InternalError("raw pass failed"));
}

TEST_F(LevelRunnerTest, CallsThatFailAreCountedApart) {
  server_->Shutdown();  // every call now fails
  LevelOptions options;
  options.concurrency = 2;
  options.seconds = 0.2;
  absl::StatusOr<LevelResult> result =
      RunLevel(target(), SegmentRequest(), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->completed, 0);
  EXPECT_GT(result->failed, 0);
}

TEST(PercentileTest, NearestRank) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({3, 1, 2}, 0.5), 2);
  EXPECT_EQ(Percentile({1, 2, 3, 4}, 0.0), 1);
  EXPECT_EQ(Percentile({1, 2, 3, 4}, 1.0), 4);
}

}  // namespace
}  // namespace unet
