#ifndef SERVER_SEGMENT_EXECUTOR_H_
#define SERVER_SEGMENT_EXECUTOR_H_

// Runs admitted Segment jobs: a bounded request queue in front of a worker
// thread that runs the engine and postprocesses the result.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/segment_job.h"

namespace unet {

struct ExecutorOptions {
  size_t max_queue_size = 256;  // jobs waiting; more are refused at once
};

class SegmentExecutor {
 public:
  explicit SegmentExecutor(const ExecutorOptions& options);
  // Finishes the queued jobs, then stops the worker.
  ~SegmentExecutor();

  SegmentExecutor(const SegmentExecutor&) = delete;
  SegmentExecutor& operator=(const SegmentExecutor&) = delete;

  // Queues `job`. On success the executor owns it and will call job->done;
  // on failure (RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE after
  // Stop) the job is destroyed and done is never called.
  absl::Status Submit(std::unique_ptr<SegmentJob> job);

  // Refuses new jobs, finishes the queued ones and joins the worker.
  void Stop();

  // Returns the number of jobs waiting.
  size_t queue_depth();

 private:
  void WorkerLoop();
  // Runs one forward pass over `jobs` (one model version, one input shape)
  // and completes each job.
  void RunBatch(std::vector<std::unique_ptr<SegmentJob>> jobs);

  const ExecutorOptions options_;
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::deque<std::unique_ptr<SegmentJob>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace unet

#endif  // SERVER_SEGMENT_EXECUTOR_H_
