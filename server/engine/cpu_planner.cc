#include "server/engine/cpu_planner.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"

namespace unet {
namespace {

// What one instance's thread did while a plan was timed.
struct InstanceRun {
  absl::Status status;
  int passes = 0;
  absl::Time start, end;
};

}  // namespace

absl::StatusOr<double> TimeCpuPlan(const CpuPlan& plan, const PassFn& pass,
                                   const ThreadCountSetter& set_threads,
                                   absl::Duration slice, int min_passes) {
  std::vector<InstanceRun> runs(plan.instances);
  absl::Barrier* warmed_up = new absl::Barrier(plan.instances);
  std::vector<std::thread> threads;
  for (int i = 0; i < plan.instances; ++i) {
    threads.emplace_back([&, i] {
      InstanceRun& run = runs[i];
      set_threads(plan.threads);
      run.status = pass(i, plan.max_batch_size);
      // The last thread through deletes the barrier.
      if (warmed_up->Block()) delete warmed_up;
      run.start = absl::Now();
      while (run.status.ok() &&
             (run.passes < min_passes || absl::Now() - run.start < slice)) {
        run.status = pass(i, plan.max_batch_size);
        if (run.status.ok()) ++run.passes;
      }
      run.end = absl::Now();
    });
  }
  for (std::thread& thread : threads) thread.join();
  absl::Time start = absl::InfiniteFuture(), end = absl::InfinitePast();
  int images = 0;
  for (const InstanceRun& run : runs) {
    if (!run.status.ok()) return run.status;
    start = std::min(start, run.start);
    end = std::max(end, run.end);
    images += run.passes * plan.max_batch_size;
  }
  return images / absl::ToDoubleSeconds(end - start);
}

absl::StatusOr<PlanMeasurement> MeasureCpuPlan(
    const CpuPlan& plan, int lone_threads, const PassFn& pass,
    const ThreadCountSetter& set_threads, absl::Duration slice, int min_passes,
    std::map<int, double>& latency_ms) {
  if (!latency_ms.count(lone_threads)) {
    absl::StatusOr<double> alone =
        TimeCpuPlan({1, lone_threads, 1}, pass, set_threads, slice, min_passes);
    if (!alone.ok()) return alone.status();
    latency_ms[lone_threads] = 1000.0 / *alone;
  }
  PlanMeasurement measurement{plan, 0, latency_ms[lone_threads]};
  if (plan == CpuPlan{1, lone_threads, 1}) {
    measurement.images_per_second = 1000.0 / measurement.latency_ms;
    return measurement;
  }
  absl::StatusOr<double> throughput =
      TimeCpuPlan(plan, pass, set_threads, slice, min_passes);
  if (!throughput.ok()) return throughput.status();
  measurement.images_per_second = *throughput;
  return measurement;
}

std::vector<CpuPlan> CpuPlanCandidates(int cpus, int max_batch_size) {
  cpus = std::max(cpus, 1);
  std::vector<int> instance_counts;
  for (int instances = 1; instances < cpus; instances *= 2) {
    instance_counts.push_back(instances);
  }
  instance_counts.push_back(cpus);
  std::vector<CpuPlan> candidates;
  for (int batch = 1; batch <= std::min(max_batch_size, 2); ++batch) {
    for (int instances : instance_counts) {
      candidates.push_back({instances, cpus / instances, batch});
    }
  }
  return candidates;
}

absl::StatusOr<CpuPlanChoice> ChooseCpuPlan(
    const std::vector<std::shared_ptr<InferenceEngine>>& engines,
    const FloatTensor& sample, const std::vector<CpuPlan>& candidates,
    const ThreadCountSetter& set_threads, const PlannerOptions& options) {
  if (candidates.empty()) return absl::InvalidArgumentError("no candidates");
  if (sample.shape.size() != 4 || sample.shape[0] != 1) {
    return absl::InvalidArgumentError("the sample is not one NCHW image");
  }
  for (const CpuPlan& plan : candidates) {
    if (plan.instances < 1 || plan.threads < 1 || plan.max_batch_size < 1 ||
        plan.instances > static_cast<int>(engines.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot time ", plan.instances, " instances of ",
                       plan.threads, " threads at batch ", plan.max_batch_size,
                       " on ", engines.size(), " engines"));
    }
  }
  // Every thread count needs its idle latency: one instance at batch 1.
  // The threads a lone request of `plan` runs on.
  auto lone_threads = [&](const CpuPlan& plan) {
    return options.lone_request_uses_all_cpus ? plan.instances * plan.threads
                                              : plan.threads;
  };
  std::set<int> thread_counts, probed_by_candidates;
  for (const CpuPlan& plan : candidates) {
    thread_counts.insert(lone_threads(plan));
    if (plan == CpuPlan{1, plan.threads, 1}) {
      probed_by_candidates.insert(plan.threads);
    }
  }
  const int timings = static_cast<int>(
      candidates.size() + thread_counts.size() - probed_by_candidates.size());
  const int rounds = std::max(options.rounds, 1);
  const absl::Duration slice = options.budget / (timings * rounds);
  // One host batch per batch size, shared by the instances (read only).
  std::map<int, FloatTensor> batches;
  for (const CpuPlan& plan : candidates) {
    if (batches.count(plan.max_batch_size)) continue;
    FloatTensor& batch = batches[plan.max_batch_size];
    batch.shape = sample.shape;
    batch.shape[0] = plan.max_batch_size;
    for (int i = 0; i < plan.max_batch_size; ++i) {
      batch.values.insert(batch.values.end(), sample.values.begin(),
                          sample.values.end());
    }
  }
  batches[1] = sample;  // timed for every thread count's idle latency
  const PassFn pass = [&](int instance, int batch) {
    return engines[instance]->ForwardLabels(batches.at(batch)).status();
  };
  const absl::Time begin = absl::Now();
  CpuPlanChoice choice;
  for (int round = 0; round < rounds; ++round) {
    if (round > 0 && absl::Now() - begin >= options.budget) break;
    // The first round tries candidates while the budget lasts; later rounds
    // time again those it tried.
    const size_t tried =
        round == 0 ? candidates.size() : choice.measured.size();
    std::map<int, double> latency_ms;  // threads -> ms, this round's
    for (size_t i = 0; i < tried; ++i) {
      if (round == 0 && i > 0 && absl::Now() - begin >= options.budget) break;
      absl::StatusOr<PlanMeasurement> measurement =
          MeasureCpuPlan(candidates[i], lone_threads(candidates[i]), pass,
                         set_threads, slice, options.min_passes, latency_ms);
      if (!measurement.ok()) return measurement.status();
      if (round == 0) {
        choice.measured.push_back(*measurement);
        continue;
      }
      PlanMeasurement& best = choice.measured[i];
      best.images_per_second =
          std::max(best.images_per_second, measurement->images_per_second);
      best.latency_ms = std::min(best.latency_ms, measurement->latency_ms);
    }
  }
  choice.spent = absl::Now() - begin;

  double best_latency = choice.measured.front().latency_ms;
  for (const PlanMeasurement& m : choice.measured) {
    best_latency = std::min(best_latency, m.latency_ms);
  }
  // The measured rate less what serving the plan costs beyond its raw
  // passes; ties go to the earlier candidate.
  auto served_rate = [&](const PlanMeasurement& m) {
    double handicap = 1;
    if (m.plan.max_batch_size > 1) handicap *= 1 + options.required_gain;
    if (m.plan.threads > 1) handicap *= 1 + options.intra_op_penalty;
    return m.images_per_second / handicap;
  };
  const PlanMeasurement* best = nullptr;
  for (const PlanMeasurement& m : choice.measured) {
    if (m.latency_ms > best_latency * (1 + options.latency_tolerance)) {
      continue;
    }
    if (best == nullptr || served_rate(m) > served_rate(*best)) best = &m;
  }
  choice.chosen = *best;
  choice.plan = best->plan;
  return choice;
}

}  // namespace unet
