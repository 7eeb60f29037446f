#ifndef SERVER_ENGINE_CPU_PLANNER_H_
#define SERVER_ENGINE_CPU_PLANNER_H_

// Chooses how the server runs a model on CPUs by timing it: how many
// instances run forward passes side by side, how many intra-op threads each
// gets, and how large a batch each may run. Small-channel convolutions scale
// poorly across threads while independent passes scale well, and which wins
// depends on the machine (docs/performance.md), so the plan is measured on
// the real model rather than guessed.

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/inference_engine.h"

namespace unet {

struct CpuPlan {
  int instances = 1;       // engines, each with a worker
  int threads = 1;         // intra-op threads of each instance
  int max_batch_size = 1;  // images per forward pass

  bool operator==(const CpuPlan& other) const {
    return instances == other.instances && threads == other.threads &&
           max_batch_size == other.max_batch_size;
  }
};

struct PlanMeasurement {
  CpuPlan plan;
  // Every instance running full batches at once: the plan's throughput.
  double images_per_second = 0;
  // One batch-1 request alone, at the plan's thread count or on all its
  // CPUs (PlannerOptions): its latency when the server is idle.
  double latency_ms = 0;
};

struct CpuPlanChoice {
  CpuPlan plan;
  PlanMeasurement chosen;
  std::vector<PlanMeasurement> measured;  // in the order tried
  absl::Duration spent;
};

struct PlannerOptions {
  // Time for all candidates together. Each still gets `min_passes` timed
  // passes per instance, so a very slow model may take longer; candidates
  // left when the budget is spent are not tried.
  absl::Duration budget = absl::Seconds(12);
  int min_passes = 2;
  // A plan's idle latency may exceed the best plan's by this fraction.
  double latency_tolerance = 0.10;
  // Whether a lone request runs on all the plan's CPUs (instances x
  // threads), as SegmentExecutor's shared_cpus does, rather than on one
  // instance's threads; its idle latency is timed so.
  bool lone_request_uses_all_cpus = false;
  // A plan of batches larger than 1 must measure this much faster to be
  // chosen: on a noisy machine it must win clearly to be worth its memory
  // and its wait for a batch to fill.
  double required_gain = 0.05;
  // A plan of more than one intra-op thread per instance must measure this
  // much faster: serving runs decoding, encoding and gRPC threads beside
  // the passes, and a team of intra-op threads waits for whichever of them
  // was preempted, where independent passes do not. On the development
  // machine 1 x 2 timed 6 % below 2 x 1 raw but served 20 % below it
  // (docs/performance.md).
  double intra_op_penalty = 0.15;
  // Each candidate is timed this many times, in turn with the others, and
  // keeps its best timing: a slow phase of a shared machine (seconds long on
  // the VM measured, docs/performance.md) then slows one timing of every
  // candidate rather than every timing of one. Rounds after the first run
  // only while the budget lasts.
  int rounds = 2;
};

// The plans worth timing on `cpus` usable CPUs: 1, 2, 4, ... and `cpus`
// instances with the CPUs divided among them, at batch 1, then the same at
// batch 2 when `max_batch_size` allows it. Batch 1 comes first: it measured
// fastest on the CPUs tried, and candidates past the budget are dropped.
std::vector<CpuPlan> CpuPlanCandidates(int cpus, int max_batch_size);

// Sets the calling thread's intra-op threads.
using ThreadCountSetter = std::function<void(int threads)>;

// Runs one forward pass of `batch` images on instance `instance`.
using PassFn = std::function<absl::Status(int instance, int batch)>;

// Times `plan` for at least `slice` and `min_passes` passes per instance:
// every instance on its own thread at the plan's thread count, all starting
// together after one untimed pass each. Returns images per second.
absl::StatusOr<double> TimeCpuPlan(const CpuPlan& plan, const PassFn& pass,
                                   const ThreadCountSetter& set_threads,
                                   absl::Duration slice, int min_passes);

// Times `plan`'s throughput, and the idle latency of one batch-1 pass on
// `lone_threads` threads, which `latency_ms` (threads -> ms) keeps so that
// each thread count is timed once. A plan of one instance at batch 1 on
// `lone_threads` threads is that pass: timed once for both.
absl::StatusOr<PlanMeasurement> MeasureCpuPlan(
    const CpuPlan& plan, int lone_threads, const PassFn& pass,
    const ThreadCountSetter& set_threads, absl::Duration slice, int min_passes,
    std::map<int, double>& latency_ms);

// Times each candidate (in options.rounds rounds) on `engines` (at least as
// many as any candidate's instances; each used by one thread at a time) with
// batches of `sample` (one image, N = 1), and returns the plan with the highest
// throughput among those whose idle latency is within the tolerance of the
// lowest (later candidates needing the required gain over earlier ones).
absl::StatusOr<CpuPlanChoice> ChooseCpuPlan(
    const std::vector<std::shared_ptr<InferenceEngine>>& engines,
    const FloatTensor& sample, const std::vector<CpuPlan>& candidates,
    const ThreadCountSetter& set_threads, const PlannerOptions& options);

}  // namespace unet

#endif  // SERVER_ENGINE_CPU_PLANNER_H_
