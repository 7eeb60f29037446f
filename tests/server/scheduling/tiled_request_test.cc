#include "server/scheduling/tiled_request.h"

#include <atomic>
#include <future>
#include <mutex>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/scheduling/segment_executor.h"
#include "tests/server/fake_engine.h"

namespace unet {
namespace {

using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

// One request in flight: its response, and its outcome once done.
struct Call {
  SegmentResponse response;
  std::promise<absl::Status> outcome;
  cv::Mat image;
  std::atomic<bool> cancelled{false};
};

// The fake engine passes each pixel through (tests/server/fake_engine.h),
// so any correct path, tiled or not, returns the image thresholded at 0.5.
std::string ExpectedMask(const cv::Mat& image) {
  cv::Mat expected = image > 127;
  expected /= 255;
  return std::string(reinterpret_cast<const char*>(expected.data),
                     expected.total());
}

class TiledRequestTest : public ::testing::Test {
 protected:
  TiledRequestTest() {
    auto engine = std::make_shared<FakeEngine>();
    engine_ = engine.get();
    model_ = FakeModel(std::move(engine), 2);
  }

  // The request's job, as the service hands it over: without input.
  std::unique_ptr<SegmentJob> Request(Call& call, int rows, int cols) {
    call.image.create(rows, cols, CV_8UC1);
    cv::randu(call.image, 0, 256);
    auto job = std::make_unique<SegmentJob>();
    job->model = model_;
    job->mask_encoding = segmentation::v1::RAW;
    job->response = &call.response;
    job->cancelled = [&call] { return call.cancelled.load(); };
    job->done = [&call](const absl::Status& status) {
      call.outcome.set_value(status);
    };
    return job;
  }

  TilePlan Plan(const Call& call, int tile_side = 204) {
    return *PlanTiles(call.image.rows, call.image.cols, tile_side,
                      model_->config);
  }

  void Start(SegmentExecutor& executor, Call& call,
             std::unique_ptr<SegmentJob> request, int tiles_in_flight,
             int tile_side = 204, bool test_time_augmentation = false) {
    TiledRequestOptions options;
    options.tile_side = tile_side;
    options.tiles_in_flight = tiles_in_flight;
    options.test_time_augmentation = test_time_augmentation;
    StartTiledRequest(call.image, options, std::move(request),
                      [&executor](std::unique_ptr<SegmentJob> tile) {
                        return executor.Submit(std::move(tile));
                      });
  }

  FakeEngine* engine_;
  std::shared_ptr<const LoadedModel> model_;
};

TEST_F(TiledRequestTest, TheTiledMaskIsTheWholeImagesMask) {
  ExecutorOptions options;
  options.batcher.max_batch_size = 4;
  SegmentExecutor executor(options);
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{
           {300, 517}, {1, 700}, {700, 1}, {20, 20}, {21, 37}}) {
    Call call;
    auto request = Request(call, rows, cols);
    request->include_probabilities = true;
    const TilePlan plan = Plan(call);
    Start(executor, call, std::move(request), 3);
    ASSERT_TRUE(call.outcome.get_future().get().ok()) << rows << "x" << cols;
    const auto& response = call.response;
    EXPECT_EQ(response.mask().width(), cols);
    EXPECT_EQ(response.mask().height(), rows);
    EXPECT_EQ(response.mask().data(), ExpectedMask(call.image))
        << rows << "x" << cols;
    EXPECT_EQ(response.timing().tiles(), plan.tiles());
    EXPECT_GE(response.timing().mean_tile_batch_size(), 1.0);
    ASSERT_EQ(response.probabilities().data().size(),
              size_t{2} * rows * cols * sizeof(float));
    const float* p =
        reinterpret_cast<const float*>(response.probabilities().data().data());
    for (int i = 0; i < rows * cols; ++i) {
      ASSERT_NEAR(p[i] + p[rows * cols + i], 1.0f, 1e-6);
      ASSERT_EQ(p[rows * cols + i] > p[i], response.mask().data()[i] == 1);
    }
  }
}

// The fake engine looks at each pixel alone: every view of the image gives
// the same answer, so their average is the plain answer.
TEST_F(TiledRequestTest, AveragingTheViewsOfAnInvariantModelChangesNothing) {
  ExecutorOptions options;
  options.batcher.max_batch_size = 4;
  SegmentExecutor executor(options);
  for (int tile_side : {572, 204}) {  // one tile per view, and many
    Call plain, averaged;
    auto plain_request = Request(plain, 150, 230);
    plain_request->include_probabilities = true;
    Start(executor, plain, std::move(plain_request), 3, tile_side);
    auto averaged_request = Request(averaged, 150, 230);
    averaged.image = plain.image;
    averaged_request->include_probabilities = true;
    Start(executor, averaged, std::move(averaged_request), 3, tile_side,
          /*test_time_augmentation=*/true);
    ASSERT_TRUE(plain.outcome.get_future().get().ok());
    ASSERT_TRUE(averaged.outcome.get_future().get().ok());
    EXPECT_EQ(averaged.response.mask().data(), ExpectedMask(plain.image));
    EXPECT_EQ(averaged.response.timing().tiles(),
              8 * plain.response.timing().tiles());
    const auto* p = reinterpret_cast<const float*>(
        plain.response.probabilities().data().data());
    const auto* q = reinterpret_cast<const float*>(
        averaged.response.probabilities().data().data());
    for (int i = 0; i < 2 * 150 * 230; ++i) ASSERT_NEAR(p[i], q[i], 1e-6) << i;
  }
}

TEST_F(TiledRequestTest, TilesOfTwoRequestsShareForwardPasses) {
  std::promise<void> entered, release;
  engine_->HoldFirstForward(entered, release);
  ExecutorOptions options;
  options.batcher.max_batch_size = 8;
  SegmentExecutor executor(options);
  // The worker is held on a first tile while both requests queue theirs.
  Call a, b;
  Start(executor, a, Request(a, 400, 400), 3);
  entered.get_future().wait();
  Start(executor, b, Request(b, 400, 400), 3);
  absl::SleepFor(absl::Milliseconds(20));
  release.set_value();
  ASSERT_TRUE(a.outcome.get_future().get().ok());
  ASSERT_TRUE(b.outcome.get_future().get().ok());
  // Alone, 3 tiles in flight batch at most 3; together up to 6.
  EXPECT_GT(b.response.timing().mean_tile_batch_size(), 3.0)
      << "tiles of a and b did not share passes";
  EXPECT_EQ(a.response.mask().data(), ExpectedMask(a.image));
  EXPECT_EQ(b.response.mask().data(), ExpectedMask(b.image));
}

TEST_F(TiledRequestTest, AnUrgentRequestOvertakesALargeImageBetweenTiles) {
  engine_->before_forward = [] { absl::SleepFor(absl::Milliseconds(5)); };
  ExecutorOptions options;
  options.batcher.max_batch_size = 1;
  SegmentExecutor executor(options);
  Call large;
  Start(executor, large, Request(large, 1200, 1200), 2);  // 5625 tiles
  absl::SleepFor(absl::Milliseconds(30));
  Call urgent;
  auto job = Request(urgent, 40, 40);
  job->image = *Preprocess(urgent.image, model_->config);
  job->priority = SegmentRequest::URGENT;
  ASSERT_TRUE(executor.Submit(std::move(job)).ok());
  ASSERT_TRUE(urgent.outcome.get_future().get().ok());
  const int calls_when_urgent_done = engine_->calls;
  EXPECT_LT(calls_when_urgent_done, 100);
  EXPECT_EQ(urgent.response.mask().data(), ExpectedMask(urgent.image));
  large.cancelled = true;
  EXPECT_EQ(large.outcome.get_future().get().code(),
            absl::StatusCode::kCancelled);
}

TEST_F(TiledRequestTest, ADeadlineMidImageStopsTheRemainingTiles) {
  engine_->before_forward = [] { absl::SleepFor(absl::Milliseconds(10)); };
  ExecutorOptions options;
  options.batcher.max_batch_size = 1;
  SegmentExecutor executor(options);
  Call call;
  auto request = Request(call, 1000, 1000);
  request->deadline = absl::Now() + absl::Milliseconds(200);
  const TilePlan plan = Plan(call);
  Start(executor, call, std::move(request), 2);
  EXPECT_EQ(call.outcome.get_future().get().code(),
            absl::StatusCode::kDeadlineExceeded);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_LT(engine_->calls, 60) << "of " << plan.tiles() << " tiles";
}

TEST_F(TiledRequestTest, MemoryIsBoundedByTheTilesInFlight) {
  ExecutorOptions options;
  options.batcher.max_batch_size = 2;
  SegmentExecutor executor(options);
  std::atomic<int64_t> most_queued_bytes{0};
  engine_->before_forward = [&] {
    const int64_t queued = executor.queue_bytes();
    int64_t seen = most_queued_bytes;
    while (queued > seen &&
           !most_queued_bytes.compare_exchange_weak(seen, queued)) {
    }
  };
  Call call;
  auto request = Request(call, 1, 200000);  // a thin image: 521 tiles
  const TilePlan plan = Plan(call, 572);
  Start(executor, call, std::move(request), 4, 572);
  ASSERT_TRUE(call.outcome.get_future().get().ok());
  EXPECT_EQ(call.response.mask().data(), ExpectedMask(call.image));
  const int64_t tile_bytes =
      int64_t{plan.tile_height} * plan.tile_width * sizeof(float);
  EXPECT_GT(plan.tiles(), 500);
  EXPECT_LE(most_queued_bytes, 4 * tile_bytes);
}

TEST_F(TiledRequestTest, AFullQueueRefusesOnlyARequestWithNothingInFlight) {
  ExecutorOptions options;
  options.batcher.max_queue_size = 1;
  std::promise<void> entered, release;
  engine_->HoldFirstForward(entered, release);
  SegmentExecutor executor(options);
  Call blocker, first, second;
  auto job = Request(blocker, 40, 40);
  job->image = *Preprocess(blocker.image, model_->config);
  ASSERT_TRUE(executor.Submit(std::move(job)).ok());
  entered.get_future().wait();  // the worker holds the blocker
  // The first request's first tile fills the queue; its second waits.
  Start(executor, first, Request(first, 300, 300), 4);
  // The second has nothing in flight to wait for: refused.
  Start(executor, second, Request(second, 300, 300), 4);
  EXPECT_EQ(second.outcome.get_future().get().code(),
            absl::StatusCode::kResourceExhausted);
  release.set_value();
  ASSERT_TRUE(blocker.outcome.get_future().get().ok());
  ASSERT_TRUE(first.outcome.get_future().get().ok());
  EXPECT_EQ(first.response.mask().data(), ExpectedMask(first.image));
}

}  // namespace
}  // namespace unet
