#include "server/scheduling/frame_request.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/time/clock.h"

namespace unet {
namespace {

using segmentation::v1::SegmentResponse;
using segmentation::v1::Timing;

// What the frames of one request share until the last is done.
struct FrameState {
  std::unique_ptr<SegmentJob> request;
  std::vector<SegmentResponse> frames;  // each frame's own response
  std::mutex mutex;
  size_t remaining = 0;
  absl::Status status;  // the first failure
};

void Finish(FrameState& state) {
  SegmentResponse& response = *state.request->response;
  if (state.status.ok()) {
    Timing& total = *response.mutable_timing();
    for (SegmentResponse& frame : state.frames) {
      const Timing& t = frame.timing();
      total.set_queue_us(std::max(total.queue_us(), t.queue_us()));
      total.set_inference_us(total.inference_us() + t.inference_us());
      total.set_postprocess_us(total.postprocess_us() + t.postprocess_us());
      total.set_batch_size(std::max(total.batch_size(), t.batch_size()));
      *response.add_frame_masks() = std::move(*frame.mutable_mask());
    }
  }
  state.request->done(state.status);
}

void FrameDone(const std::shared_ptr<FrameState>& state,
               const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    if (!status.ok() && state->status.ok()) state->status = status;
    if (--state->remaining > 0) return;
  }
  Finish(*state);
}

}  // namespace

void StartFrameRequest(std::vector<PreparedImage> frames,
                       std::unique_ptr<SegmentJob> request,
                       const SubmitTile& submit) {
  auto state = std::make_shared<FrameState>();
  state->frames.resize(frames.size());
  state->remaining = frames.size();
  state->request = std::move(request);
  const SegmentJob& parent = *state->request;
  std::vector<std::unique_ptr<SegmentJob>> jobs;
  const absl::Time admitted = absl::Now();
  for (size_t i = 0; i < frames.size(); ++i) {
    auto job = std::make_unique<SegmentJob>();
    job->model = parent.model;
    job->image = std::move(frames[i]);
    job->mask_encoding = parent.mask_encoding;
    job->priority = parent.priority;
    job->request_admitted = admitted;
    job->deadline = parent.deadline;
    job->cancelled = parent.cancelled;
    job->response = &state->frames[i];
    job->done = [state](const absl::Status& status) {
      FrameDone(state, status);
    };
    jobs.push_back(std::move(job));
  }
  // Made before any is queued: a frame that finishes at once must not see
  // its siblings half built.
  for (std::unique_ptr<SegmentJob>& job : jobs) {
    if (absl::Status queued = submit(std::move(job)); !queued.ok()) {
      FrameDone(state, queued);
    }
  }
}

}  // namespace unet
