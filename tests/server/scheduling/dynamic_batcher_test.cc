#include "server/scheduling/dynamic_batcher.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace unet {
namespace {

using segmentation::v1::SegmentRequest;

class DynamicBatcherTest : public ::testing::Test {
 protected:
  // Returns a queued request as the batcher sees it: a model version, a
  // padded shape, and the outcome recorded under `id` when done.
  std::unique_ptr<SegmentJob> Job(
      int id, int side = 188, std::shared_ptr<const LoadedModel> model = {}) {
    auto job = std::make_unique<SegmentJob>();
    job->model = model ? model : model_a_;
    job->image.channels = 1;
    job->image.padded_height = job->image.padded_width = side;
    job->done = [this, id](const absl::Status& status) {
      std::lock_guard<std::mutex> lock(mutex_);
      outcomes_[id] = status.code();
    };
    ids_[job.get()] = id;
    return job;
  }

  std::unique_ptr<SegmentJob> Urgent(int id) {
    auto job = Job(id);
    job->priority = SegmentRequest::URGENT;
    return job;
  }

  std::vector<int> Ids(const std::vector<std::unique_ptr<SegmentJob>>& batch) {
    std::vector<int> ids;
    for (const auto& job : batch) ids.push_back(ids_.at(job.get()));
    return ids;
  }

  absl::StatusCode Outcome(int id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return outcomes_.count(id) ? outcomes_[id] : absl::StatusCode::kUnknown;
  }

  std::shared_ptr<const LoadedModel> model_a_ = std::make_shared<LoadedModel>();
  std::shared_ptr<const LoadedModel> model_b_ = std::make_shared<LoadedModel>();
  std::map<const SegmentJob*, int> ids_;
  std::mutex mutex_;
  std::map<int, absl::StatusCode> outcomes_;
};

// Waits (up to 10 s) until `count` callers wait in NextBatch.
void AwaitWaitingWorkers(DynamicBatcher& batcher, size_t count) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (batcher.waiting_workers() < count && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
}

BatcherOptions Options(size_t max_batch, absl::Duration delay,
                       size_t max_queue = 64) {
  BatcherOptions options;
  options.max_batch_size = max_batch;
  options.max_queue_delay = delay;
  options.max_queue_size = max_queue;
  return options;
}

TEST_F(DynamicBatcherTest, FullQueueIsRefusedAtOnce) {
  DynamicBatcher batcher(Options(4, absl::ZeroDuration(), 2));
  EXPECT_TRUE(batcher.Enqueue(Job(1)).ok());
  EXPECT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(batcher.Enqueue(Job(3)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(batcher.queue_depth(), 2u);
}

TEST_F(DynamicBatcherTest, ExpiredRequestsAreAnsweredNotBatched) {
  DynamicBatcher batcher(Options(8, absl::ZeroDuration()));
  auto expired = Job(1);
  expired->deadline = absl::Now();
  ASSERT_TRUE(batcher.Enqueue(std::move(expired)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{2});
  EXPECT_EQ(Outcome(1), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(DynamicBatcherTest, CancelledRequestsLeaveTheQueue) {
  DynamicBatcher batcher(Options(8, absl::ZeroDuration(), 2));
  auto cancelled = Job(1);
  cancelled->cancelled = [] { return true; };
  ASSERT_TRUE(batcher.Enqueue(std::move(cancelled)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  // The queue is full, but the cancelled request makes room.
  ASSERT_TRUE(batcher.Enqueue(Job(3)).ok());
  EXPECT_EQ(Outcome(1), absl::StatusCode::kCancelled);
  EXPECT_EQ(Ids(batcher.NextBatch()), (std::vector<int>{2, 3}));
}

TEST_F(DynamicBatcherTest, UrgentOvertakesRoutine) {
  DynamicBatcher batcher(Options(1, absl::ZeroDuration()));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(3)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{3});
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{2});
}

TEST_F(DynamicBatcherTest, PartsOfAnEarlierRequestGoFirst) {
  // Request A (admitted first) queues its tiles a few at a time; request B
  // and a whole image C arrive between them. A's later tile still runs
  // before B's tiles and C, so that A finishes instead of all taking turns.
  DynamicBatcher batcher(Options(1, absl::ZeroDuration()));
  const absl::Time b = absl::Now() - absl::Milliseconds(1),
                   a = b - absl::Milliseconds(1);
  auto Part = [&](int id, absl::Time request_admitted) {
    auto job = Job(id);
    job->request_admitted = request_admitted;
    return job;
  };
  ASSERT_TRUE(batcher.Enqueue(Part(1, a)).ok());
  ASSERT_TRUE(batcher.Enqueue(Part(2, b)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(3)).ok());  // a whole image, admitted now
  ASSERT_TRUE(batcher.Enqueue(Part(4, a)).ok());
  ASSERT_TRUE(batcher.Enqueue(Part(5, b)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(6)).ok());
  std::vector<int> order;
  for (int i = 0; i < 6; ++i) order.push_back(Ids(batcher.NextBatch())[0]);
  EXPECT_EQ(order, (std::vector<int>{6, 1, 4, 2, 5, 3}));
}

TEST_F(DynamicBatcherTest, UrgentJobsFillABatchFirst) {
  DynamicBatcher batcher(Options(2, absl::ZeroDuration()));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(3)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), (std::vector<int>{3, 1}));
}

TEST_F(DynamicBatcherTest, NeverMixesVersionsOrShapes) {
  DynamicBatcher batcher(Options(8, absl::ZeroDuration()));
  const std::shared_ptr<const LoadedModel> models[] = {model_a_, model_b_};
  int id = 0;
  for (int round = 0; round < 3; ++round) {
    for (const auto& model : models) {
      for (int side : {188, 204}) {
        ASSERT_TRUE(batcher.Enqueue(Job(++id, side, model)).ok());
      }
    }
  }
  batcher.Close();
  int delivered = 0;
  for (auto batch = batcher.NextBatch(); !batch.empty();
       batch = batcher.NextBatch()) {
    EXPECT_EQ(batch.size(), 3u);  // the three rounds of one (model, shape)
    for (const auto& job : batch) {
      EXPECT_EQ(job->model, batch.front()->model);
      EXPECT_EQ(job->image.padded_height, batch.front()->image.padded_height);
    }
    delivered += batch.size();
  }
  EXPECT_EQ(delivered, id);
}

TEST_F(DynamicBatcherTest, FirstRequestWaitsForCompany) {
  DynamicBatcher batcher(Options(4, absl::Seconds(10)));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  auto batch =
      std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  for (int id = 2; id <= 4; ++id) {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(batcher.Enqueue(Job(id)).ok());
  }
  // A full batch leaves at once, long before the 10 s delay.
  ASSERT_EQ(batch.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(batch.get()), (std::vector<int>{1, 2, 3, 4}));
}

TEST_F(DynamicBatcherTest, ALoneRequestLeavesAfterTheDelay) {
  DynamicBatcher batcher(Options(4, absl::Milliseconds(50)));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
}

// A lone job goes to the first-choice worker even when another began
// waiting after it.
TEST_F(DynamicBatcherTest, ALoneJobGoesToTheFirstChoiceWorker) {
  DynamicBatcher batcher(Options(4, absl::ZeroDuration()));
  std::promise<void> first_waiting;
  auto first = std::async(std::launch::async, [&] {
    first_waiting.set_value();
    return batcher.NextBatch(/*first_choice=*/true);
  });
  first_waiting.get_future().wait();
  absl::SleepFor(absl::Milliseconds(50));  // in NextBatch
  auto newest =
      std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(first.get()), std::vector<int>{1});
  EXPECT_EQ(newest.wait_for(std::chrono::milliseconds(100)),
            std::future_status::timeout);
  batcher.Close();
  EXPECT_TRUE(newest.get().empty());
}

// With exclusive lone batches, a lone job taken by the first-choice worker
// while the other waits keeps the other idle until the first-choice worker
// comes back, which then takes the next lone job itself.
TEST_F(DynamicBatcherTest, ALoneBatchIsExclusiveUntilItsWorkerComesBack) {
  BatcherOptions options = Options(1, absl::ZeroDuration());
  options.workers = 2;
  options.exclusive_lone_batches = true;
  DynamicBatcher batcher(options);
  struct Taken {
    std::vector<std::unique_ptr<SegmentJob>> batch;
    bool exclusive = false;
  };
  std::future<std::vector<std::unique_ptr<SegmentJob>>> other;
  std::future<Taken> first;
  // Before the futures wait for their calls: a failed check must not hang.
  absl::Cleanup close = [&] { batcher.Close(); };
  other = std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  first = std::async(std::launch::async, [&] {
    Taken taken;
    taken.batch = batcher.NextBatch(/*first_choice=*/true, &taken.exclusive);
    return taken;
  });
  // Both wait before the job comes: it is then the first-choice worker's.
  AwaitWaitingWorkers(batcher, 2);
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Taken lone = first.get();
  EXPECT_EQ(Ids(lone.batch), std::vector<int>{1});
  EXPECT_TRUE(lone.exclusive);

  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(other.wait_for(std::chrono::milliseconds(200)),
            std::future_status::timeout);
  bool exclusive = false;
  EXPECT_EQ(Ids(batcher.NextBatch(/*first_choice=*/true, &exclusive)),
            std::vector<int>{2});
  EXPECT_TRUE(exclusive);

  // Two jobs queued at once: neither batch is exclusive, both workers run.
  ASSERT_TRUE(batcher.Enqueue(Job(3)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(4)).ok());
  std::vector<int> taken =
      Ids(batcher.NextBatch(/*first_choice=*/true, &exclusive));
  EXPECT_FALSE(exclusive);
  ASSERT_EQ(other.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  for (int id : Ids(other.get())) taken.push_back(id);
  std::sort(taken.begin(), taken.end());
  EXPECT_EQ(taken, (std::vector<int>{3, 4}));
}

// Closing lets every worker drain the queue, an exclusive batch running.
TEST_F(DynamicBatcherTest, CloseLetsEveryWorkerDrainDuringALoneBatch) {
  BatcherOptions options = Options(1, absl::ZeroDuration());
  options.workers = 2;
  options.exclusive_lone_batches = true;
  DynamicBatcher batcher(options);
  std::future<std::vector<std::unique_ptr<SegmentJob>>> other, first;
  absl::Cleanup close = [&] { batcher.Close(); };
  other = std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  first = std::async(std::launch::async,
                     [&] { return batcher.NextBatch(/*first_choice=*/true); });
  AwaitWaitingWorkers(batcher, 2);
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(first.get()), std::vector<int>{1});
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(other.wait_for(std::chrono::milliseconds(100)),
            std::future_status::timeout);
  batcher.Close();
  ASSERT_EQ(other.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(other.get()), std::vector<int>{2});
}

BatcherOptions WaitingOnlyForExpected(size_t max_batch, absl::Duration delay) {
  BatcherOptions options = Options(max_batch, delay);
  options.wait_only_for_expected = true;
  return options;
}

TEST_F(DynamicBatcherTest, ALoneRequestNobodyFollowsLeavesAtOnce) {
  DynamicBatcher batcher(WaitingOnlyForExpected(4, absl::Seconds(10)));
  // Expected and queued: it is company no longer on its way.
  batcher.ExpectJob();
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  batcher.EndExpectation();
  auto batch =
      std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  ASSERT_EQ(batch.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(batch.get()), std::vector<int>{1});
}

TEST_F(DynamicBatcherTest, TheFirstRequestWaitsForAnExpectedOne) {
  DynamicBatcher batcher(WaitingOnlyForExpected(4, absl::Seconds(10)));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  batcher.ExpectJob();  // being decoded
  auto batch =
      std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  EXPECT_EQ(batch.wait_for(std::chrono::milliseconds(200)),
            std::future_status::timeout);
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  batcher.EndExpectation();
  ASSERT_EQ(batch.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(batch.get()), (std::vector<int>{1, 2}));
}

TEST_F(DynamicBatcherTest, AnExpectationThatEndsWithoutAJobReleasesTheFirst) {
  DynamicBatcher batcher(WaitingOnlyForExpected(4, absl::Seconds(10)));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  batcher.ExpectJob();
  auto batch =
      std::async(std::launch::async, [&] { return batcher.NextBatch(); });
  EXPECT_EQ(batch.wait_for(std::chrono::milliseconds(200)),
            std::future_status::timeout);
  batcher.EndExpectation();  // its request was refused
  ASSERT_EQ(batch.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Ids(batch.get()), std::vector<int>{1});
}

TEST_F(DynamicBatcherTest, CloseRefusesNewJobsAndHandsOutQueuedOnes) {
  DynamicBatcher batcher(Options(4, absl::Seconds(10)));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  batcher.Close();
  EXPECT_EQ(batcher.Enqueue(Job(2)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});  // no waiting
  EXPECT_TRUE(batcher.NextBatch().empty());
}

constexpr int64_t kJobBytes = int64_t{188} * 188 * sizeof(float);

TEST_F(DynamicBatcherTest, QueueIsBoundedInBytes) {
  BatcherOptions options = Options(1, absl::ZeroDuration());
  options.max_queue_bytes = 2 * kJobBytes;
  DynamicBatcher batcher(options);
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(batcher.queue_bytes(), 2 * kJobBytes);
  const absl::Status full = batcher.Enqueue(Job(3));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(batcher.queue_depth(), 2u);
  // Room comes back as jobs leave.
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});
  EXPECT_EQ(batcher.queue_bytes(), kJobBytes);
  EXPECT_TRUE(batcher.Enqueue(Job(4)).ok());
}

TEST_F(DynamicBatcherTest, UrgentEvictsTheNewestRoutineFromAFullQueue) {
  DynamicBatcher batcher(Options(1, absl::ZeroDuration(), 2));
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(batcher.Enqueue(Job(3)).code(),
            absl::StatusCode::kResourceExhausted);  // routine: refused
  ASSERT_TRUE(batcher.Enqueue(Urgent(4)).ok());
  EXPECT_EQ(Outcome(2), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Outcome(1), absl::StatusCode::kUnknown);  // still queued
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{4});
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});
}

TEST_F(DynamicBatcherTest, UrgentEvictsAsManyRoutineAsItsBytesNeed) {
  BatcherOptions options = Options(1, absl::ZeroDuration());
  const int64_t big_bytes = int64_t{380} * 380 * sizeof(float);
  options.max_queue_bytes = big_bytes + kJobBytes;
  DynamicBatcher batcher(options);
  for (int id = 1; id <= 4; ++id) ASSERT_TRUE(batcher.Enqueue(Job(id)).ok());
  auto big = Job(5, 380);
  big->priority = SegmentRequest::URGENT;
  ASSERT_TRUE(batcher.Enqueue(std::move(big)).ok());
  // The bound leaves room for the urgent job and one routine job: the
  // three newest routine jobs made room.
  for (int id : {2, 3, 4}) {
    EXPECT_EQ(Outcome(id), absl::StatusCode::kResourceExhausted) << id;
  }
  EXPECT_EQ(batcher.queue_depth(), 2u);
  EXPECT_LE(batcher.queue_bytes(), options.max_queue_bytes);
}

TEST_F(DynamicBatcherTest, UrgentIsRefusedOnlyWhenUrgentFillsTheQueue) {
  DynamicBatcher batcher(Options(1, absl::ZeroDuration(), 2));
  ASSERT_TRUE(batcher.Enqueue(Urgent(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(2)).ok());
  EXPECT_EQ(batcher.Enqueue(Urgent(3)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Outcome(1), absl::StatusCode::kUnknown);
  EXPECT_EQ(Outcome(2), absl::StatusCode::kUnknown);
}

TEST_F(DynamicBatcherTest, RoutineAgesPastASteadyUrgentLoad) {
  BatcherOptions options = Options(1, absl::ZeroDuration());
  options.routine_aging = absl::Milliseconds(50);
  DynamicBatcher batcher(options);
  ASSERT_TRUE(batcher.Enqueue(Job(1)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(2)).ok());
  // Within the aging time urgent goes first...
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{2});
  absl::SleepFor(absl::Milliseconds(60));
  // ...but urgent requests that arrive after the routine one has aged do not
  // overtake it.
  ASSERT_TRUE(batcher.Enqueue(Urgent(3)).ok());
  ASSERT_TRUE(batcher.Enqueue(Urgent(4)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{1});
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{3});
}

TEST_F(DynamicBatcherTest, BatchesAreBoundedInPixels) {
  BatcherOptions options = Options(8, absl::ZeroDuration());
  options.max_batch_pixels = 2 * 188 * 188;
  DynamicBatcher batcher(options);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(batcher.Enqueue(Job(id)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), (std::vector<int>{1, 2}));
  // A single job larger than the bound still runs, alone.
  ASSERT_TRUE(batcher.Enqueue(Job(4, 700)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{3});
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{4});
}

TEST_F(DynamicBatcherTest, AnExpiredCallIsADeadlineEvenIfAlsoCancelled) {
  DynamicBatcher batcher(Options(8, absl::ZeroDuration()));
  auto expired = Job(1);
  expired->deadline = absl::Now();
  expired->cancelled = [] { return true; };  // as gRPC marks it
  ASSERT_TRUE(batcher.Enqueue(std::move(expired)).ok());
  ASSERT_TRUE(batcher.Enqueue(Job(2)).ok());
  EXPECT_EQ(Ids(batcher.NextBatch()), std::vector<int>{2});
  EXPECT_EQ(Outcome(1), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(DynamicBatcherTest, ExpiredJobsLeaveEvenWhileNoWorkerAsks) {
  DynamicBatcher batcher(Options(8, absl::ZeroDuration()));
  auto job = Job(1);
  job->deadline = absl::Now() + absl::Milliseconds(20);
  ASSERT_TRUE(batcher.Enqueue(std::move(job)).ok());
  // No NextBatch: the workers are all busy with a long pass.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (Outcome(1) == absl::StatusCode::kUnknown && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(Outcome(1), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(batcher.queue_depth(), 0u);
  EXPECT_EQ(batcher.queue_bytes(), 0);
}

}  // namespace
}  // namespace unet
