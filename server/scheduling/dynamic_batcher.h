#ifndef SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
#define SERVER_SCHEDULING_DYNAMIC_BATCHER_H_

// The request queue and the forming of batches from it, as Triton's dynamic
// batcher: it only forms batches; SegmentExecutor's workers run them.
//
// Two lanes, URGENT before ROUTINE, bounded together in jobs and in the bytes
// of their network inputs. An URGENT job is never refused for room that
// ROUTINE jobs hold: the newest ROUTINE jobs are evicted (RESOURCE_EXHAUSTED)
// to make it. A ROUTINE job ages: after waiting `routine_aging` it competes
// with URGENT jobs as one that arrived that much later, so a steady URGENT
// load cannot starve it.
//
// Within a lane, jobs run in the order their requests were admitted: the
// tiles and frames of one request (queued a few at a time) go ahead of
// requests admitted after it.
//
// A batch holds jobs of one model version and one padded input shape, at
// most max_batch_size of them and max_batch_pixels input pixels (the first
// job always goes); the first job of a batch waits at most max_queue_delay
// for company (with wait_only_for_expected, only while a job is expected:
// ExpectJob). Jobs whose deadline passed or whose caller went away are
// completed with DEADLINE_EXCEEDED or CANCELLED, and never computed: a reaper
// looks for them every kReapInterval, so that they leave the queue (and free
// their memory) even while every worker is busy with a long pass.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/scheduling/segment_job.h"

namespace unet {

struct BatcherOptions {
  size_t max_queue_size = 256;  // waiting jobs, both lanes; more are refused
  // Bytes of network input waiting, both lanes (0: unbounded).
  int64_t max_queue_bytes = int64_t{1} << 30;
  size_t max_batch_size = 8;
  int64_t max_batch_pixels = 0;  // network input pixels per batch; 0: any
  absl::Duration max_queue_delay = absl::Microseconds(2000);
  absl::Duration routine_aging = absl::Seconds(1);
  // Whether the first job of a batch waits for company only while another
  // job is expected (ExpectJob): for a caller that announces every job
  // before preparing it. A request that arrives after the first job was
  // queued must still be decoded before it can join (the EM slice takes
  // 1.4 ms of the default 2 ms delay), so waiting for one that has not
  // arrived mostly adds the delay to a lone request's latency.
  bool wait_only_for_expected = false;
  // Workers calling NextBatch; with exclusive_lone_batches.
  int workers = 1;
  // A lone batch (taken by the first-choice worker while every other worker
  // waits and nothing else is queued) is exclusive: no other worker gets a
  // batch until the first-choice worker comes back for its next one, or the
  // batcher is closed. Needs a single first-choice worker. For
  // CPUs, where a lone batch runs on every CPU: a second pass started beside
  // it would hold more threads than CPUs (libgomp then sleeps at every
  // barrier), and both requests would finish later than one after the other.
  bool exclusive_lone_batches = false;
};

inline constexpr absl::Duration kReapInterval = absl::Milliseconds(50);

class DynamicBatcher {
 public:
  explicit DynamicBatcher(const BatcherOptions& options);
  // Stops the reaper; the jobs still queued are dropped without an answer,
  // so Close and drain with NextBatch first.
  ~DynamicBatcher();

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `job`. On success the batcher owns it and job->done will be
  // called; on failure (RESOURCE_EXHAUSTED when full, UNAVAILABLE after
  // Close) the job is destroyed and done is never called.
  absl::Status Enqueue(std::unique_ptr<SegmentJob> job);

  // Blocks until a batch is ready and returns it; returns an empty batch once
  // closed and drained. With one job queued and several workers waiting, a
  // `first_choice` worker takes it, else the one that began waiting last: it
  // ran a pass a moment ago, so its threads and caches are warm (on CPUs,
  // handing alternate requests to alternate workers cost 13 ms of a 56 ms
  // pass, docs/performance.md). `exclusive`, when given, says whether the
  // batch is an exclusive lone batch (BatcherOptions).
  std::vector<std::unique_ptr<SegmentJob>> NextBatch(bool first_choice = false,
                                                     bool* exclusive = nullptr);

  // A job is being prepared and may be queued soon; EndExpectation once it
  // is queued (just before Enqueue) or will not be.
  void ExpectJob();
  void EndExpectation();

  // Refuses new jobs; NextBatch hands out the queued ones without waiting.
  void Close();

  size_t queue_depth();
  int64_t queue_bytes();
  // Workers waiting in NextBatch for a job.
  size_t waiting_workers();

 private:
  using Lane = std::deque<std::unique_ptr<SegmentJob>>;

  // Completes dead jobs every kReapInterval until the batcher is destroyed.
  void ReapLoop();
  // Whether `job` fits beside what is queued. Needs the lock.
  bool Fits(const SegmentJob& job) const;
  // Moves jobs that must not run from `lane` into `dead`. Needs the lock.
  void RemoveDeadJobs(Lane& lane, absl::Time now,
                      std::vector<std::unique_ptr<SegmentJob>>& dead);
  // Moves the newest ROUTINE jobs into `evicted` until `urgent` fits; moves
  // none when evicting all of them would not make it fit. Needs the lock.
  void EvictRoutineFor(const SegmentJob& urgent,
                       std::vector<std::unique_ptr<SegmentJob>>& evicted);
  // Where `job` joins `lane`: behind every job of a request admitted no
  // later than its own (SegmentJob::request_admitted), which for a whole
  // request is the end.
  static Lane::iterator InsertionPoint(Lane& lane, const SegmentJob& job);
  // Removes the job at `it` from `lane` and returns it. Needs the lock.
  std::unique_ptr<SegmentJob> Take(Lane& lane, Lane::iterator it);
  // The lane the next batch starts from: URGENT, unless the oldest ROUTINE
  // job has aged past the oldest URGENT one. Needs a non-empty queue.
  Lane& HeadLane();
  // Jobs queued that could share a batch with `head`. Needs the lock.
  size_t CountCompatible(const SegmentJob& head) const;

  const BatcherOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Lane urgent_, routine_;
  int64_t queued_bytes_ = 0;
  int expected_jobs_ = 0;  // ExpectJob calls not yet ended
  bool closed_ = false;
  bool destroying_ = false;
  // Tickets of the workers waiting in NextBatch, in the order they came.
  std::set<uint64_t> waiting_workers_;
  std::set<uint64_t> waiting_first_choice_;  // of those, first_choice
  // An exclusive lone batch is running: only a first-choice worker, which
  // clears this when it comes back, gets a batch.
  bool exclusive_running_ = false;
  uint64_t next_ticket_ = 0;
  std::thread reaper_;  // last: starts once the rest is built
};

}  // namespace unet

#endif  // SERVER_SCHEDULING_DYNAMIC_BATCHER_H_
