#include "server/scheduling/dynamic_batcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace unet {
namespace {

using segmentation::v1::SegmentRequest;

// The request a job belongs to was admitted at this time.
absl::Time RequestAdmitted(const SegmentJob& job) {
  return job.request_admitted == absl::InfinitePast() ? job.admitted
                                                      : job.request_admitted;
}

bool Compatible(const SegmentJob& a, const SegmentJob& b) {
  return a.model == b.model && a.image.channels == b.image.channels &&
         a.image.padded_height == b.image.padded_height &&
         a.image.padded_width == b.image.padded_width;
}

// Completes jobs that will not run, outside the batcher's lock.
void CompleteDead(std::vector<std::unique_ptr<SegmentJob>>& dead,
                  absl::Time now) {
  for (auto& job : dead) {
    // gRPC also marks a call whose deadline passed as cancelled, a moment
    // before this clock may say so: the deadline is the better answer.
    job->done(
        job->deadline <= now + kReapInterval
            ? absl::DeadlineExceededError(absl::StrCat(
                  "deadline passed after ",
                  absl::FormatDuration(now - job->admitted), " in the queue"))
            : absl::CancelledError("the caller cancelled the request"));
  }
  dead.clear();
}

void CompleteEvicted(std::vector<std::unique_ptr<SegmentJob>>& evicted) {
  for (auto& job : evicted) {
    job->done(absl::ResourceExhaustedError(
        "request queue is full; this ROUTINE request made room for an URGENT "
        "one"));
  }
  evicted.clear();
}

}  // namespace

DynamicBatcher::DynamicBatcher(const BatcherOptions& options)
    : options_(options), reaper_([this] { ReapLoop(); }) {}

DynamicBatcher::~DynamicBatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    destroying_ = true;
  }
  changed_.notify_all();
  reaper_.join();
}

void DynamicBatcher::ReapLoop() {
  std::vector<std::unique_ptr<SegmentJob>> dead;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!destroying_) {
    changed_.wait_for(lock, absl::ToChronoMilliseconds(kReapInterval));
    const absl::Time now = absl::Now();
    RemoveDeadJobs(urgent_, now, dead);
    RemoveDeadJobs(routine_, now, dead);
    if (dead.empty()) continue;
    lock.unlock();
    CompleteDead(dead, now);
    lock.lock();
  }
}

bool DynamicBatcher::Fits(const SegmentJob& job) const {
  const bool count_fits =
      urgent_.size() + routine_.size() < options_.max_queue_size;
  const bool bytes_fit =
      options_.max_queue_bytes <= 0 ||
      queued_bytes_ + job.input_bytes() <= options_.max_queue_bytes;
  return count_fits && bytes_fit;
}

DynamicBatcher::Lane::iterator DynamicBatcher::InsertionPoint(
    Lane& lane, const SegmentJob& job) {
  auto it = lane.end();
  while (it != lane.begin() &&
         RequestAdmitted(**std::prev(it)) > RequestAdmitted(job)) {
    --it;
  }
  return it;
}

std::unique_ptr<SegmentJob> DynamicBatcher::Take(Lane& lane,
                                                 Lane::iterator it) {
  std::unique_ptr<SegmentJob> job = std::move(*it);
  lane.erase(it);
  queued_bytes_ -= job->input_bytes();
  return job;
}

void DynamicBatcher::EvictRoutineFor(
    const SegmentJob& urgent,
    std::vector<std::unique_ptr<SegmentJob>>& evicted) {
  int64_t routine_bytes = 0;
  for (const auto& job : routine_) routine_bytes += job->input_bytes();
  const bool could_fit =
      urgent_.size() < options_.max_queue_size &&
      (options_.max_queue_bytes <= 0 ||
       queued_bytes_ - routine_bytes + urgent.input_bytes() <=
           options_.max_queue_bytes);
  if (!could_fit) return;
  while (!Fits(urgent)) {
    evicted.push_back(Take(routine_, std::prev(routine_.end())));
  }
}

absl::Status DynamicBatcher::Enqueue(std::unique_ptr<SegmentJob> job) {
  std::vector<std::unique_ptr<SegmentJob>> dead, evicted;
  const absl::Time now = absl::Now();
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      status = absl::UnavailableError("server is shutting down");
    } else {
      if (!Fits(*job)) {
        // Make room from jobs whose callers no longer wait, before refusing.
        RemoveDeadJobs(urgent_, now, dead);
        RemoveDeadJobs(routine_, now, dead);
      }
      if (!Fits(*job) && job->priority == SegmentRequest::URGENT) {
        EvictRoutineFor(*job, evicted);
      }
      if (!Fits(*job)) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "request queue is full (", urgent_.size() + routine_.size(),
            " requests, ", queued_bytes_ >> 20,
            " MiB of input waiting; at most ", options_.max_queue_size, " and ",
            options_.max_queue_bytes >> 20, " MiB)"));
      } else {
        job->admitted = now;
        queued_bytes_ += job->input_bytes();
        Lane& lane =
            job->priority == SegmentRequest::URGENT ? urgent_ : routine_;
        lane.insert(InsertionPoint(lane, *job), std::move(job));
      }
    }
  }
  changed_.notify_all();
  CompleteDead(dead, now);
  CompleteEvicted(evicted);
  return status;
}

void DynamicBatcher::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

void DynamicBatcher::ExpectJob() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++expected_jobs_;
}

void DynamicBatcher::EndExpectation() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --expected_jobs_;
  }
  // A first job waiting for this one need not wait any longer.
  changed_.notify_all();
}

size_t DynamicBatcher::queue_depth() {
  std::lock_guard<std::mutex> lock(mutex_);
  return urgent_.size() + routine_.size();
}

int64_t DynamicBatcher::queue_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_bytes_;
}

size_t DynamicBatcher::waiting_workers() {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_workers_.size();
}

void DynamicBatcher::RemoveDeadJobs(
    Lane& lane, absl::Time now,
    std::vector<std::unique_ptr<SegmentJob>>& dead) {
  for (auto it = lane.begin(); it != lane.end();) {
    if ((*it)->deadline > now && !(*it)->cancelled()) {
      ++it;
      continue;
    }
    const auto at = it - lane.begin();
    dead.push_back(Take(lane, it));
    it = lane.begin() + at;
  }
}

DynamicBatcher::Lane& DynamicBatcher::HeadLane() {
  if (urgent_.empty()) return routine_;
  if (routine_.empty()) return urgent_;
  const bool routine_aged =
      routine_.front()->admitted + options_.routine_aging <=
      urgent_.front()->admitted;
  return routine_aged ? routine_ : urgent_;
}

size_t DynamicBatcher::CountCompatible(const SegmentJob& head) const {
  size_t count = 0;
  for (const Lane* lane : {&urgent_, &routine_}) {
    for (const auto& job : *lane) count += Compatible(head, *job);
  }
  return count;
}

std::vector<std::unique_ptr<SegmentJob>> DynamicBatcher::NextBatch(
    bool first_choice, bool* exclusive) {
  std::vector<std::unique_ptr<SegmentJob>> batch, dead;
  std::unique_lock<std::mutex> lock(mutex_);
  if (first_choice && exclusive_running_) {
    // Back for the next batch: the exclusive one has run. The others may
    // take jobs again, once this worker waits too (a lone job stays its).
    exclusive_running_ = false;
    changed_.notify_all();
  }
  const uint64_t ticket = next_ticket_++;
  waiting_workers_.insert(ticket);
  if (first_choice) waiting_first_choice_.insert(ticket);
  // Leaves the waiting workers (under the lock) on every return, and lets
  // the next one in line see the jobs this one left.
  struct Leave {
    DynamicBatcher& batcher;
    uint64_t ticket;
    ~Leave() {
      batcher.waiting_workers_.erase(ticket);
      batcher.waiting_first_choice_.erase(ticket);
      if (!batcher.urgent_.empty() || !batcher.routine_.empty()) {
        batcher.changed_.notify_all();
      }
    }
  } leave{*this, ticket};
  while (true) {
    changed_.wait(lock, [&] {
      const size_t queued = urgent_.size() + routine_.size();
      const uint64_t lone_job_taker = waiting_first_choice_.empty()
                                          ? *waiting_workers_.rbegin()
                                          : *waiting_first_choice_.rbegin();
      const bool may_take = first_choice || !exclusive_running_;
      return closed_ ||
             (may_take &&
              (queued > 1 || (queued == 1 && ticket == lone_job_taker)));
    });
    const absl::Time now = absl::Now();
    RemoveDeadJobs(urgent_, now, dead);
    RemoveDeadJobs(routine_, now, dead);
    if (!dead.empty()) {
      // Answer them now, not when the next batch leaves.
      lock.unlock();
      CompleteDead(dead, now);
      lock.lock();
      continue;
    }
    if (urgent_.empty() && routine_.empty()) {
      if (closed_) return batch;
      continue;
    }
    // Wait for company until the head's delay is spent or a batch is full;
    // an urgent arrival becomes the new head.
    Lane& head_lane = HeadLane();
    const SegmentJob& head = *head_lane.front();
    const absl::Time send_by = head.admitted + options_.max_queue_delay;
    const bool company_may_come =
        !options_.wait_only_for_expected || expected_jobs_ > 0;
    if (!closed_ && now < send_by && company_may_come &&
        CountCompatible(head) < options_.max_batch_size) {
      changed_.wait_until(lock, absl::ToChronoTime(send_by));
      continue;
    }
    // The head, then its compatible followers, urgent ones first, within
    // the batch's size and pixel bounds.
    batch.push_back(Take(head_lane, head_lane.begin()));
    int64_t pixels = batch.front()->input_pixels();
    const SegmentJob& first = *batch.front();
    for (Lane* lane : {&urgent_, &routine_}) {
      for (auto it = lane->begin();
           it != lane->end() && batch.size() < options_.max_batch_size;) {
        const bool fits =
            options_.max_batch_pixels <= 0 ||
            pixels + (*it)->input_pixels() <= options_.max_batch_pixels;
        if (!Compatible(first, **it) || !fits) {
          ++it;
          continue;
        }
        pixels += (*it)->input_pixels();
        const auto at = it - lane->begin();
        batch.push_back(Take(*lane, it));
        it = lane->begin() + at;
      }
    }
    // Every worker waits (this one's ticket included) and nothing is left.
    const bool lone =
        options_.exclusive_lone_batches && first_choice && urgent_.empty() &&
        routine_.empty() &&
        waiting_workers_.size() >= static_cast<size_t>(options_.workers);
    if (lone) exclusive_running_ = true;
    if (exclusive != nullptr) *exclusive = lone;
    return batch;
  }
}

}  // namespace unet
