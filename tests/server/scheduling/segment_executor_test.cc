#include "server/scheduling/segment_executor.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <new>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_engine.h"

namespace unet {
namespace {

using segmentation::v1::SegmentResponse;

// One request in flight: its response, and its outcome once done.
struct Call {
  SegmentResponse response;
  std::promise<absl::Status> outcome;
  cv::Mat image;
};

class SegmentExecutorTest : public ::testing::Test {
 protected:
  SegmentExecutorTest() {
    auto engine = std::make_shared<FakeEngine>();
    engine_ = engine.get();
    model_ = FakeModel(std::move(engine), 4);
  }

  std::unique_ptr<SegmentJob> Job(Call& call, int rows = 20, int cols = 30) {
    call.image.create(rows, cols, CV_8UC1);
    cv::randu(call.image, 0, 256);
    auto job = std::make_unique<SegmentJob>();
    job->model = model_;
    job->image = *Preprocess(call.image, model_->config);
    job->mask_encoding = segmentation::v1::RAW;
    job->response = &call.response;
    job->done = [&call](const absl::Status& status) {
      call.outcome.set_value(status);
    };
    return job;
  }

  // The mask a correct path returns for `call` with the fake engine.
  static std::string ExpectedMask(const Call& call) {
    cv::Mat expected = call.image > 127;
    expected /= 255;
    return std::string(reinterpret_cast<const char*>(expected.data),
                       expected.total());
  }

  // Waits (up to 10 s) until `count` workers wait for a job: they have
  // started, or come back from their last one.
  static void AwaitWaitingWorkers(SegmentExecutor& executor, size_t count) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (executor.waiting_workers() < count && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  void HoldFirstForward(std::promise<void>& entered,
                        std::promise<void>& release) {
    engine_->HoldFirstForward(entered, release);
  }

  FakeEngine* engine_;
  std::shared_ptr<const LoadedModel> model_;
};

TEST_F(SegmentExecutorTest, RoutesEachResultToItsCaller) {
  SegmentExecutor executor({});
  std::vector<Call> calls(8);
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_TRUE(executor.Submit(Job(calls[i], 10 + i, 40 - i)).ok());
  }
  for (Call& call : calls) {
    ASSERT_TRUE(call.outcome.get_future().get().ok());
    EXPECT_EQ(call.response.mask().data(), ExpectedMask(call));
    EXPECT_EQ(call.response.mask().height(), call.image.rows);
    EXPECT_EQ(call.response.mask().width(), call.image.cols);
    EXPECT_EQ(call.response.model(), "fake");
    EXPECT_EQ(call.response.model_version(), 4);
    EXPECT_GE(call.response.timing().batch_size(), 1);
  }
}

// Masks cropped and encoded on finishing threads reach their own callers.
TEST_F(SegmentExecutorTest, FinishThreadsRouteEachResultToItsCaller) {
  engine_->before_forward = [] { absl::SleepFor(absl::Milliseconds(5)); };
  ExecutorOptions options;
  options.batcher.max_batch_size = 8;
  options.finish_threads = 3;
  SegmentExecutor executor(options);
  std::vector<Call> calls(40);
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t; i < 40; i += 4) {
        ASSERT_TRUE(executor.Submit(Job(calls[i], 10 + i, 50 - i)).ok());
      }
    });
  }
  for (auto& client : clients) client.join();
  int batched = 0;
  for (Call& call : calls) {
    ASSERT_TRUE(call.outcome.get_future().get().ok());
    EXPECT_EQ(call.response.mask().data(), ExpectedMask(call));
    batched += call.response.timing().batch_size() > 1;
  }
  EXPECT_GT(batched, 0);
}

// One caller at a time is served by one worker, worker 0, whose threads and
// caches are warm, not by the workers in turn.
TEST_F(SegmentExecutorTest, ALoneCallerKeepsOneWarmWorker) {
  auto second = std::make_shared<FakeEngine>();
  FakeEngine& second_engine = *second;
  auto model = std::make_shared<LoadedModel>(*model_);
  model->engines.push_back(std::move(second));
  model_ = model;
  ExecutorOptions options;
  options.slots = 2;
  SegmentExecutor executor(options);
  constexpr int kCalls = 12;
  for (int i = 0; i < kCalls; ++i) {
    // Both workers wait before each call: the first time, that they have
    // started (a call that finds only worker 1 waiting is its to take);
    // after, that the last one went back to waiting (under a loaded
    // machine that took more than the 5 ms once slept here).
    AwaitWaitingWorkers(executor, 2);
    Call call;
    ASSERT_TRUE(executor.Submit(Job(call)).ok());
    ASSERT_TRUE(call.outcome.get_future().get().ok());
  }
  EXPECT_EQ(engine_->calls, kCalls);
  EXPECT_EQ(second_engine.calls, 0);
}

// Executor options of two workers sharing 4 CPUs, recording the thread
// counts the workers set.
ExecutorOptions SharedCpus(std::mutex& mutex, std::vector<int>& shares) {
  ExecutorOptions options;
  options.batcher.max_batch_size = 1;
  options.slots = 2;
  options.shared_cpus = 4;
  options.set_threads = [&](int threads) {
    std::lock_guard<std::mutex> lock(mutex);
    shares.push_back(threads);
  };
  return options;
}

// A lone job runs on every CPU, and alone: a job that comes meanwhile waits
// for it rather than run beside it with more threads than CPUs (both
// finished later that way), then runs on every CPU in turn.
TEST_F(SegmentExecutorTest, ALoneJobRunsOnEveryCpuAndAloneUntilDone) {
  std::mutex mutex;
  std::vector<int> shares;
  SegmentExecutor executor(SharedCpus(mutex, shares));
  AwaitWaitingWorkers(executor, 2);
  Call alone;
  ASSERT_TRUE(executor.Submit(Job(alone)).ok());
  ASSERT_TRUE(alone.outcome.get_future().get().ok());
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(shares, std::vector<int>{4});
    shares.clear();
  }
  std::promise<void> entered, release;
  HoldFirstForward(entered, release);
  Call held, next;
  AwaitWaitingWorkers(executor, 2);
  ASSERT_TRUE(executor.Submit(Job(held)).ok());
  entered.get_future().wait();
  ASSERT_TRUE(executor.Submit(Job(next)).ok());
  std::future<absl::Status> next_outcome = next.outcome.get_future();
  EXPECT_EQ(next_outcome.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout);
  release.set_value();
  ASSERT_TRUE(held.outcome.get_future().get().ok());
  ASSERT_TRUE(next_outcome.get().ok());
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_TRUE(shares.empty()) << "worker 0 ran it on its 4 threads";
}

// Jobs that find others queued run side by side, each worker on its half.
TEST_F(SegmentExecutorTest, QueuedJobsRunSideBySideOnTheirShares) {
  std::mutex mutex;
  std::vector<int> shares;
  SegmentExecutor executor(SharedCpus(mutex, shares));
  // The first pass is held until two more are queued; those two then wait
  // for each other, so they meet only if they run at the same time.
  std::mutex passes_mutex;
  std::condition_variable passes_changed;
  int passes = 0;
  bool released = false, met = false;
  std::promise<void> first_entered;
  engine_->before_forward = [&] {
    std::unique_lock<std::mutex> lock(passes_mutex);
    if (++passes == 1) {
      first_entered.set_value();
      passes_changed.wait(lock, [&] { return released; });
      return;
    }
    passes_changed.notify_all();
    met = passes_changed.wait_for(lock, std::chrono::seconds(30),
                                  [&] { return passes >= 3; });
  };
  Call held, calls[2];
  AwaitWaitingWorkers(executor, 2);
  ASSERT_TRUE(executor.Submit(Job(held)).ok());
  first_entered.get_future().wait();
  for (Call& call : calls) ASSERT_TRUE(executor.Submit(Job(call)).ok());
  {
    std::lock_guard<std::mutex> lock(passes_mutex);
    released = true;
  }
  passes_changed.notify_all();
  for (Call& call : calls) ASSERT_TRUE(call.outcome.get_future().get().ok());
  ASSERT_TRUE(held.outcome.get_future().get().ok());
  EXPECT_TRUE(met);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(shares, (std::vector<int>{4, 2, 2}));
}

// A worker finishes a job itself when no other job waits for it (a lone
// request is spared a hand-off between threads), and hands the finishing to
// the finishing threads when jobs wait.
TEST_F(SegmentExecutorTest, FinishesOnTheWorkerUnlessJobsWait) {
  std::mutex mutex;
  std::vector<std::thread::id> passes;
  std::promise<void> first_pass_entered, release;
  std::shared_future<void> released = release.get_future().share();
  engine_->before_forward = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    passes.push_back(std::this_thread::get_id());
    if (passes.size() == 1) {
      first_pass_entered.set_value();
      released.wait();
    }
  };
  ExecutorOptions options;
  options.batcher.max_batch_size = 1;
  options.finish_threads = 1;
  SegmentExecutor executor(options);
  Call calls[3];
  std::thread::id finished_on[3];
  for (int i = 0; i < 3; ++i) {
    auto job = Job(calls[i]);
    job->done = [&, i](const absl::Status& status) {
      finished_on[i] = std::this_thread::get_id();
      calls[i].outcome.set_value(status);
    };
    ASSERT_TRUE(executor.Submit(std::move(job)).ok());
    // Job 1 waits while job 0 runs; job 2 comes alone.
    if (i == 0) first_pass_entered.get_future().wait();
    if (i == 1) {
      release.set_value();
      ASSERT_TRUE(calls[1].outcome.get_future().get().ok());
    }
  }
  ASSERT_TRUE(calls[0].outcome.get_future().get().ok());
  ASSERT_TRUE(calls[2].outcome.get_future().get().ok());
  const std::thread::id worker = passes.front();
  EXPECT_NE(finished_on[0], worker);  // job 1 was waiting
  EXPECT_EQ(finished_on[1], worker);
  EXPECT_EQ(finished_on[2], worker);
}

// Stop returns only once every job handed to the finishing threads is done.
TEST_F(SegmentExecutorTest, StopWaitsForQueuedFinishing) {
  ExecutorOptions options;
  options.batcher.max_batch_size = 8;
  options.finish_threads = 1;
  SegmentExecutor executor(options);
  std::atomic<int> done{0};
  std::vector<Call> calls(16);
  for (Call& call : calls) {
    auto job = Job(call);
    job->done = [&done](const absl::Status&) {
      absl::SleepFor(absl::Milliseconds(10));
      ++done;
    };
    ASSERT_TRUE(executor.Submit(std::move(job)).ok());
  }
  executor.Stop();
  EXPECT_EQ(done, 16);
}

TEST_F(SegmentExecutorTest, FullQueueIsRefusedAtOnce) {
  std::promise<void> entered, release;
  HoldFirstForward(entered, release);
  ExecutorOptions options;
  options.batcher.max_queue_size = 2;
  options.batcher.max_batch_size = 1;
  SegmentExecutor executor(options);
  std::vector<Call> calls(4);
  ASSERT_TRUE(executor.Submit(Job(calls[0])).ok());
  entered.get_future().wait();  // the worker holds job 0; the queue is empty
  ASSERT_TRUE(executor.Submit(Job(calls[1])).ok());
  ASSERT_TRUE(executor.Submit(Job(calls[2])).ok());
  EXPECT_EQ(executor.Submit(Job(calls[3])).code(),
            absl::StatusCode::kResourceExhausted);
  release.set_value();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(calls[i].outcome.get_future().get().ok());
  }
}

TEST_F(SegmentExecutorTest, AnExpiredRequestIsNeverComputed) {
  std::promise<void> entered, release;
  HoldFirstForward(entered, release);
  SegmentExecutor executor({});
  Call busy, late;
  ASSERT_TRUE(executor.Submit(Job(busy)).ok());
  entered.get_future().wait();  // the worker is busy with `busy`
  auto job = Job(late);
  job->deadline = absl::Now() + absl::Milliseconds(20);
  ASSERT_TRUE(executor.Submit(std::move(job)).ok());
  absl::SleepFor(absl::Milliseconds(60));
  release.set_value();
  EXPECT_TRUE(busy.outcome.get_future().get().ok());
  EXPECT_EQ(late.outcome.get_future().get().code(),
            absl::StatusCode::kDeadlineExceeded);
  executor.Stop();
  EXPECT_EQ(engine_->calls, 1);  // only `busy` reached the engine
}

TEST_F(SegmentExecutorTest, BatchesFormUnderConcurrency) {
  engine_->before_forward = [] { absl::SleepFor(absl::Milliseconds(20)); };
  ExecutorOptions options;
  options.batcher.max_batch_size = 8;
  SegmentExecutor executor(options);
  constexpr int kThreads = 4, kPerThread = 8;
  std::vector<Call> calls(kThreads * kPerThread);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Call& call = calls[t * kPerThread + i];
        ASSERT_TRUE(executor.Submit(Job(call)).ok());
        call.outcome.get_future().wait();  // one request at a time per client
      }
    });
  }
  for (auto& client : clients) client.join();
  for (Call& call : calls) {
    EXPECT_EQ(call.response.mask().data(), ExpectedMask(call));
  }
  const double mean_batch = static_cast<double>(calls.size()) / engine_->calls;
  EXPECT_GT(mean_batch, 1.5) << engine_->calls << " forward passes";
}

TEST_F(SegmentExecutorTest, EngineErrorsReachTheCaller) {
  engine_->fail_with = absl::InternalError("device lost");
  SegmentExecutor executor({});
  Call call;
  ASSERT_TRUE(executor.Submit(Job(call)).ok());
  EXPECT_EQ(call.outcome.get_future().get().code(),
            absl::StatusCode::kInternal);
}

TEST_F(SegmentExecutorTest, StopFinishesQueuedJobsThenRefusesNewOnes) {
  SegmentExecutor executor({});
  std::vector<Call> calls(5);
  for (Call& call : calls) ASSERT_TRUE(executor.Submit(Job(call)).ok());
  executor.Stop();
  for (Call& call : calls) {
    EXPECT_TRUE(call.outcome.get_future().get().ok());
  }
  EXPECT_GE(engine_->calls, 1);
  Call late;
  EXPECT_EQ(executor.Submit(Job(late)).code(), absl::StatusCode::kUnavailable);
}

// Holds the worker on a first job so that `calls` queue up behind it and
// leave together in one batch.
void SubmitAsOneBatch(
    SegmentExecutor& executor, std::promise<void>& entered,
    std::promise<void>& release, Call& first, std::vector<Call>& calls,
    const std::function<std::unique_ptr<SegmentJob>(Call&)>& job) {
  ASSERT_TRUE(executor.Submit(job(first)).ok());
  entered.get_future().wait();
  for (Call& call : calls) ASSERT_TRUE(executor.Submit(job(call)).ok());
  release.set_value();
}

TEST_F(SegmentExecutorTest, ABatchThatRunsOutOfMemoryIsSplitAndRetried) {
  std::promise<void> entered, release;
  HoldFirstForward(entered, release);
  engine_->max_batch_that_fits = 2;
  ExecutorOptions options;
  options.batcher.max_batch_size = 8;
  SegmentExecutor executor(options);
  Call first;
  std::vector<Call> calls(8);
  SubmitAsOneBatch(executor, entered, release, first, calls,
                   [this](Call& call) { return Job(call); });
  ASSERT_TRUE(first.outcome.get_future().get().ok());
  for (Call& call : calls) {
    const absl::Status status = call.outcome.get_future().get();
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(call.response.mask().data(), ExpectedMask(call));
    EXPECT_LE(call.response.timing().batch_size(), 2);
  }
  // 8 -> 4 + 4 -> 2 + 2 + 2 + 2: three halvings failed before the pairs ran.
  EXPECT_EQ(engine_->out_of_memory, 3);
}

TEST_F(SegmentExecutorTest, ASingleImageThatDoesNotFitFailsAlone) {
  engine_->max_batch_that_fits = 0;
  engine_->fail_with = absl::ResourceExhaustedError("fake device full");
  SegmentExecutor executor({});
  Call call;
  ASSERT_TRUE(executor.Submit(Job(call)).ok());
  EXPECT_EQ(call.outcome.get_future().get().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SegmentExecutorTest, ExceptionsBecomeStatusesAndTheWorkerGoesOn) {
  int forward = 0;
  engine_->before_forward = [&forward] {
    ++forward;
    if (forward == 1) throw std::bad_alloc();
    if (forward == 2) throw std::runtime_error("a bug of ours");
  };
  SegmentExecutor executor({});
  Call oom, bug, fine;
  ASSERT_TRUE(executor.Submit(Job(oom)).ok());
  EXPECT_EQ(oom.outcome.get_future().get().code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(executor.Submit(Job(bug)).ok());
  EXPECT_EQ(bug.outcome.get_future().get().code(), absl::StatusCode::kInternal);
  ASSERT_TRUE(executor.Submit(Job(fine)).ok());
  EXPECT_TRUE(fine.outcome.get_future().get().ok());
}

}  // namespace
}  // namespace unet
