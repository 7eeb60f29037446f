#include "common/ordered_prefetcher.h"

#include <atomic>
#include <chrono>
#include <set>
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

TEST(OrderedPrefetcherTest, MakesOnSeveralThreadsAndStaysWithinAhead) {
  std::atomic<int> made{0};
  std::mutex mutex;
  std::set<std::thread::id> threads;
  {
    OrderedPrefetcher<int> items(0, 3, 6, [&](int i) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        threads.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++made;
      return i;
    });
    EXPECT_EQ(items.Take(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // Item 0 was taken, so at most items 1..6 are made beyond it.
    EXPECT_LE(made.load(), 7);
    EXPECT_GE(made.load(), 6);
  }  // stops with items not taken
  EXPECT_EQ(threads.size(), 3u);
}

}  // namespace
}  // namespace unet
