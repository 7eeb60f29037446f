#include "server/scheduling/work_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace unet {

WorkPool::WorkPool(const WorkPoolOptions& options) : options_(options) {
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

WorkPool::~WorkPool() { Stop(); }

absl::Status WorkPool::TrySubmit(int64_t bytes, std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return absl::UnavailableError("server is shutting down");
    // An empty queue takes any one task: its bytes are already received.
    if (!queue_.empty() &&
        (queue_.size() >= options_.max_queued ||
         queued_bytes_ + bytes > options_.max_queued_bytes)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("too many requests waiting to be decoded (",
                       queue_.size(), ", ", queued_bytes_ >> 20, " MiB)"));
    }
    queue_.push_back({bytes, std::move(task)});
    queued_bytes_ += bytes;
  }
  changed_.notify_one();
  return absl::OkStatus();
}

void WorkPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
  }
  changed_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void WorkPool::Loop() {
  while (true) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= task.bytes;
    }
    task.run();
  }
}

}  // namespace unet
