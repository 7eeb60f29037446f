#ifndef SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
#define SERVER_SCHEDULING_DYNAMIC_BATCHER_H_

// The request queue and the forming of batches from it, as Triton's dynamic
// batcher: it only forms batches; SegmentExecutor's workers run them.
//
// Two bounded lanes, URGENT before ROUTINE. A batch holds jobs of one model
// version and one padded input shape, at most max_batch_size of them; the
// first job of a batch waits at most max_queue_delay for company. Jobs whose
// deadline passed or whose caller went away are completed with
// DEADLINE_EXCEEDED or CANCELLED when met, and never computed.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/scheduling/segment_job.h"

namespace unet {

struct BatcherOptions {
  size_t max_queue_size = 256;  // waiting jobs, both lanes; more are refused
  size_t max_batch_size = 8;
  absl::Duration max_queue_delay = absl::Microseconds(2000);
};

class DynamicBatcher {
 public:
  explicit DynamicBatcher(const BatcherOptions& options);

  // Queues `job`. On success the batcher owns it and job->done will be
  // called; on failure (RESOURCE_EXHAUSTED when full, UNAVAILABLE after
  // Close) the job is destroyed and done is never called.
  absl::Status Enqueue(std::unique_ptr<SegmentJob> job);

  // Blocks until a batch is ready and returns it; returns an empty batch once
  // closed and drained.
  std::vector<std::unique_ptr<SegmentJob>> NextBatch();

  // Refuses new jobs; NextBatch hands out the queued ones without waiting.
  void Close();

  size_t queue_depth();

 private:
  using Lane = std::deque<std::unique_ptr<SegmentJob>>;

  // Moves jobs that must not run from `lane` into `dead`. Needs the lock.
  void RemoveDeadJobs(Lane& lane, absl::Time now,
                      std::vector<std::unique_ptr<SegmentJob>>& dead);
  // The job the next batch starts with: the oldest urgent, else the oldest
  // routine one. Needs the lock and a non-empty queue.
  const SegmentJob& Head() const;
  // Jobs queued that could share a batch with `head`. Needs the lock.
  size_t CountCompatible(const SegmentJob& head) const;

  const BatcherOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Lane urgent_, routine_;
  bool closed_ = false;
};

}  // namespace unet

#endif  // SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
