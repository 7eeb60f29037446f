#include "server/scheduling/work_pool.h"

#include <atomic>
#include <future>

#include "gtest/gtest.h"

namespace unet {
namespace {

// Occupies every thread of `pool` until `release` is set.
void Occupy(WorkPool& pool, int threads, std::shared_future<void> release,
            std::atomic<int>& started) {
  for (int i = 0; i < threads; ++i) {
    ASSERT_TRUE(pool.TrySubmit(0,
                               [release, &started] {
                                 ++started;
                                 release.wait();
                               })
                    .ok());
  }
  while (started < threads) std::this_thread::yield();
}

TEST(WorkPoolTest, RunsEveryTask) {
  std::atomic<int> ran{0};
  {
    WorkPool pool({/*threads=*/2, /*max_queued=*/100, /*bytes=*/1 << 20});
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(pool.TrySubmit(10, [&ran] { ++ran; }).ok());
    }
  }  // the destructor runs what is queued
  EXPECT_EQ(ran, 50);
}

TEST(WorkPoolTest, RefusesAtOnceWhenTheQueueIsFullInCount) {
  WorkPool pool({1, 2, 1 << 20});
  std::promise<void> release;
  std::atomic<int> started{0};
  Occupy(pool, 1, release.get_future().share(), started);
  EXPECT_TRUE(pool.TrySubmit(1, [] {}).ok());
  EXPECT_TRUE(pool.TrySubmit(1, [] {}).ok());
  EXPECT_EQ(pool.TrySubmit(1, [] {}).code(),
            absl::StatusCode::kResourceExhausted);
  release.set_value();
}

TEST(WorkPoolTest, RefusesAtOnceWhenTheQueueIsFullInBytes) {
  WorkPool pool({1, 100, 1000});
  std::promise<void> release;
  std::atomic<int> started{0};
  Occupy(pool, 1, release.get_future().share(), started);
  EXPECT_TRUE(pool.TrySubmit(600, [] {}).ok());
  EXPECT_EQ(pool.TrySubmit(600, [] {}).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(pool.TrySubmit(400, [] {}).ok());
  release.set_value();
}

TEST(WorkPoolTest, AnEmptyQueueTakesOneTaskOfAnySize) {
  WorkPool pool({1, 100, 1000});
  std::promise<void> release;
  std::atomic<int> started{0};
  Occupy(pool, 1, release.get_future().share(), started);
  EXPECT_TRUE(pool.TrySubmit(5000, [] {}).ok());
  EXPECT_EQ(pool.TrySubmit(1, [] {}).code(),
            absl::StatusCode::kResourceExhausted);
  release.set_value();
}

TEST(WorkPoolTest, StopRunsTheQueuedTasksThenRefuses) {
  std::atomic<int> ran{0};
  WorkPool pool({1, 100, 1 << 20});
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(pool.TrySubmit(1, [&] { ++ran; }).ok());
  pool.Stop();
  EXPECT_EQ(ran, 10);
  EXPECT_EQ(pool.TrySubmit(1, [] {}).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace unet
