#ifndef SERVER_SCHEDULING_SEGMENT_EXECUTOR_H_
#define SERVER_SCHEDULING_SEGMENT_EXECUTOR_H_

// Runs admitted Segment jobs: the dynamic batcher forms batches, one worker
// per execution slot (a model instance on a device) runs them and completes
// each job.

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/scheduling/dynamic_batcher.h"
#include "server/scheduling/segment_job.h"
#include "server/scheduling/work_pool.h"

namespace unet {

struct ExecutorOptions {
  BatcherOptions batcher;
  // Workers; worker i runs batches on engine i of each model version.
  int slots = 1;
  // Threads that crop and encode the masks of finished batches while the
  // workers run the next ones (a GPU would otherwise wait for PNG encoding);
  // 0: the worker does it. A worker that finds them busy, or no job waiting
  // for it, does it itself.
  int finish_threads = 0;
  // CPUs the workers share (0: their threads are left alone). A lone job
  // (every worker idle, nothing else queued) runs on worker 0 on every CPU,
  // the lowest latency, and no other worker starts a batch until it is
  // done; otherwise each worker runs on its share, these CPUs divided among
  // all workers (independent passes, the highest throughput).
  int shared_cpus = 0;
  // Sets the calling thread's intra-op threads; with shared_cpus.
  std::function<void(int threads)> set_threads;
};

class SegmentExecutor {
 public:
  explicit SegmentExecutor(const ExecutorOptions& options);
  // Finishes the queued jobs, then stops the worker.
  ~SegmentExecutor();

  SegmentExecutor(const SegmentExecutor&) = delete;
  SegmentExecutor& operator=(const SegmentExecutor&) = delete;

  // Queues `job`; see DynamicBatcher::Enqueue for who owns it after.
  absl::Status Submit(std::unique_ptr<SegmentJob> job) {
    return batcher_.Enqueue(std::move(job));
  }

  // See DynamicBatcher::ExpectJob.
  void ExpectJob() { batcher_.ExpectJob(); }
  void EndExpectation() { batcher_.EndExpectation(); }

  // Refuses new jobs, finishes the queued ones and joins the workers.
  void Stop();

  size_t queue_depth() { return batcher_.queue_depth(); }
  int64_t queue_bytes() { return batcher_.queue_bytes(); }
  size_t waiting_workers() { return batcher_.waiting_workers(); }

 private:
  void WorkerLoop(int slot);

  const int slots_;
  const int shared_cpus_;
  const std::function<void(int)> set_threads_;
  DynamicBatcher batcher_;
  std::unique_ptr<WorkPool> finisher_;  // null: finish on the worker
  std::vector<std::thread> workers_;
};

}  // namespace unet

#endif  // SERVER_SCHEDULING_SEGMENT_EXECUTOR_H_
