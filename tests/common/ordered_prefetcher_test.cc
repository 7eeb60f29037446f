#include "common/ordered_prefetcher.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"

namespace unet {
namespace {

TEST(OrderedPrefetcherTest, ItemsComeInOrderThoughMadeOutOfOrder) {
  OrderedPrefetcher<int> squares(5, 4, 8, [](int i) {
    // Later items finish first.
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 3 == 0 ? 5 : 0));
    return i * i;
  });
  for (int i = 5; i < 105; ++i) EXPECT_EQ(squares.Take(), i * i);
}

TEST(OrderedPrefetcherTest, MakesOnSeveralThreads) {
  std::mutex mutex;
  std::condition_variable entered;
  std::set<std::thread::id> threads;
  OrderedPrefetcher<int> items(0, 3, 6, [&](int i) {
    // Each of the first items waits (up to 10 s) until three threads have
    // come in: only possible if three make at once.
    std::unique_lock<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
    entered.notify_all();
    entered.wait_for(lock, std::chrono::seconds(10),
                     [&] { return threads.size() >= 3; });
    return i;
  });
  for (int i = 0; i < 6; ++i) EXPECT_EQ(items.Take(), i);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(threads.size(), 3u);
}

TEST(OrderedPrefetcherTest, MakesNoMoreThanAheadOfTheConsumer) {
  std::atomic<int> made{0};
  OrderedPrefetcher<int> items(0, 2, 6, [&](int i) {
    ++made;
    return i;
  });
  EXPECT_EQ(items.Take(), 0);
  // Items 1..6 may be made, not 7: wait until they are, then a while more.
  for (int wait = 0; wait < 1000 && made < 7; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(made.load(), 7);
}

TEST(OrderedPrefetcherTest, AnExceptionComesOutOfItsTake) {
  OrderedPrefetcher<int> items(0, 2, 4, [](int i) {
    if (i == 2) throw std::runtime_error("bad tile");
    return i;
  });
  EXPECT_EQ(items.Take(), 0);
  EXPECT_EQ(items.Take(), 1);
  EXPECT_THROW(items.Take(), std::runtime_error);
  EXPECT_EQ(items.Take(), 3);
}

}  // namespace
}  // namespace unet
