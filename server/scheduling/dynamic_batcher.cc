#include "server/scheduling/dynamic_batcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace unet {
namespace {

bool Compatible(const SegmentJob& a, const SegmentJob& b) {
  return a.model == b.model && a.image.channels == b.image.channels &&
         a.image.padded_height == b.image.padded_height &&
         a.image.padded_width == b.image.padded_width;
}

// Completes jobs that will not run, outside the batcher's lock.
void CompleteDead(std::vector<std::unique_ptr<SegmentJob>>& dead,
                  absl::Time now) {
  for (auto& job : dead) {
    job->done(
        job->cancelled()
            ? absl::CancelledError("the caller cancelled the request")
            : absl::DeadlineExceededError(absl::StrCat(
                  "deadline passed after ",
                  absl::FormatDuration(now - job->admitted), " in the queue")));
  }
  dead.clear();
}

}  // namespace

DynamicBatcher::DynamicBatcher(const BatcherOptions& options)
    : options_(options) {}

absl::Status DynamicBatcher::Enqueue(std::unique_ptr<SegmentJob> job) {
  std::vector<std::unique_ptr<SegmentJob>> dead;
  const absl::Time now = absl::Now();
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      status = absl::UnavailableError("server is shutting down");
    } else {
      if (urgent_.size() + routine_.size() >= options_.max_queue_size) {
        // Make room from jobs whose callers no longer wait, before refusing.
        RemoveDeadJobs(urgent_, now, dead);
        RemoveDeadJobs(routine_, now, dead);
      }
      if (urgent_.size() + routine_.size() >= options_.max_queue_size) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "request queue is full (", options_.max_queue_size, " waiting)"));
      } else {
        job->admitted = now;
        (job->priority == segmentation::v1::SegmentRequest::URGENT ? urgent_
                                                                   : routine_)
            .push_back(std::move(job));
      }
    }
  }
  changed_.notify_all();
  CompleteDead(dead, now);
  return status;
}

void DynamicBatcher::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

size_t DynamicBatcher::queue_depth() {
  std::lock_guard<std::mutex> lock(mutex_);
  return urgent_.size() + routine_.size();
}

void DynamicBatcher::RemoveDeadJobs(
    Lane& lane, absl::Time now,
    std::vector<std::unique_ptr<SegmentJob>>& dead) {
  auto alive = std::stable_partition(
      lane.begin(), lane.end(), [now](const std::unique_ptr<SegmentJob>& job) {
        return job->deadline > now && !job->cancelled();
      });
  std::move(alive, lane.end(), std::back_inserter(dead));
  lane.erase(alive, lane.end());
}

const SegmentJob& DynamicBatcher::Head() const {
  return urgent_.empty() ? *routine_.front() : *urgent_.front();
}

size_t DynamicBatcher::CountCompatible(const SegmentJob& head) const {
  size_t count = 0;
  for (const Lane* lane : {&urgent_, &routine_}) {
    for (const auto& job : *lane) count += Compatible(head, *job);
  }
  return count;
}

std::vector<std::unique_ptr<SegmentJob>> DynamicBatcher::NextBatch() {
  std::vector<std::unique_ptr<SegmentJob>> batch, dead;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] {
      return closed_ || !urgent_.empty() || !routine_.empty();
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
    const SegmentJob& head = Head();
    const absl::Time send_by = head.admitted + options_.max_queue_delay;
    if (!closed_ && now < send_by &&
        CountCompatible(head) < options_.max_batch_size) {
      changed_.wait_until(lock, absl::ToChronoTime(send_by));
      continue;
    }
    // Take the head and its compatible followers, urgent ones first.
    for (Lane* lane : {&urgent_, &routine_}) {
      for (auto it = lane->begin();
           it != lane->end() && batch.size() < options_.max_batch_size;) {
        if (Compatible(head, **it)) {
          batch.push_back(std::move(*it));
          it = lane->erase(it);
        } else {
          ++it;
        }
      }
    }
    return batch;
  }
}

}  // namespace unet
