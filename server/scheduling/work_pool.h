#ifndef SERVER_SCHEDULING_WORK_POOL_H_
#define SERVER_SCHEDULING_WORK_POOL_H_

// A few threads that run tasks from a queue bounded in count and in bytes:
// the server decodes and prepares requests here rather than on gRPC's
// threads, so that the memory decoding takes is bounded by the thread count
// however many calls arrive at once. A full queue refuses at once.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace unet {

struct WorkPoolOptions {
  int threads = 2;
  size_t max_queued = 64;                         // tasks waiting
  int64_t max_queued_bytes = int64_t{256} << 20;  // what waiting tasks hold
};

class WorkPool {
 public:
  explicit WorkPool(const WorkPoolOptions& options);
  // Runs the queued tasks, then joins the threads.
  ~WorkPool();

  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task`, which holds `bytes` until it has run. RESOURCE_EXHAUSTED
  // when the queue is full, UNAVAILABLE once stopped; then `task` is
  // dropped without running. `task` must not throw.
  absl::Status TrySubmit(int64_t bytes, std::function<void()> task);

  // Refuses new tasks, runs the queued ones and joins the threads.
  void Stop();

 private:
  struct Task {
    int64_t bytes = 0;
    std::function<void()> run;
  };

  void Loop();

  const WorkPoolOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Task> queue_;
  int64_t queued_bytes_ = 0;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace unet

#endif  // SERVER_SCHEDULING_WORK_POOL_H_
