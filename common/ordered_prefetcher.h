#ifndef COMMON_ORDERED_PREFETCHER_H_
#define COMMON_ORDERED_PREFETCHER_H_

// Makes item(i) for i = first, first + 1, ... on a few threads ahead of a
// consumer that takes them in order: the trainer prepares augmented tiles
// on the CPU while the GPU runs the steps before them. `make` must be safe
// to call from several threads at once and depend on i alone. An exception
// from `make` is thrown again by the Take that would have returned its item.

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace unet {

template <typename T>
class OrderedPrefetcher {
 public:
  // Starts `threads` threads that keep at most `ahead` items ready.
  OrderedPrefetcher(int first, int threads, int ahead,
                    std::function<T(int)> make)
      : make_(std::move(make)),
        next_to_make_(first),
        next_to_take_(first),
        ahead_(ahead) {
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { Loop(); });
  }

  ~OrderedPrefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    changed_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }

  OrderedPrefetcher(const OrderedPrefetcher&) = delete;
  OrderedPrefetcher& operator=(const OrderedPrefetcher&) = delete;

  // Returns the next item in order, waiting for it if need be.
  T Take() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.count(next_to_take_) > 0; });
    auto node = ready_.extract(next_to_take_++);
    lock.unlock();
    changed_.notify_all();  // room for one more
    if (node.mapped().error) std::rethrow_exception(node.mapped().error);
    return std::move(*node.mapped().item);
  }

 private:
  void Loop() {
    while (true) {
      int index;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] {
          return stopped_ || next_to_make_ < next_to_take_ + ahead_;
        });
        if (stopped_) return;
        index = next_to_make_++;
      }
      Made made;
      try {
        made.item.emplace(make_(index));
      } catch (...) {
        made.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.emplace(index, std::move(made));
      }
      changed_.notify_all();
    }
  }

  struct Made {
    std::optional<T> item;
    std::exception_ptr error;
  };

  const std::function<T(int)> make_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int, Made> ready_;
  int next_to_make_, next_to_take_;
  const int ahead_;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace unet

#endif  // COMMON_ORDERED_PREFETCHER_H_
