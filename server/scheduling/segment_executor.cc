#include "server/scheduling/segment_executor.h"

#include <cstring>
#include <exception>
#include <iterator>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/imaging/postprocess.h"

namespace unet {
namespace {

int64_t MicrosSince(absl::Time start) {
  return absl::ToInt64Microseconds(absl::Now() - start);
}

// Completes one job from its slice of the batch's logits.
absl::Status FinishJob(SegmentJob& job, const float* logits, int classes,
                       int out_height, int out_width) {
  const absl::Time start = absl::Now();
  const auto segmentation =
      ExtractSegmentation(logits, classes, out_height, out_width, job.image,
                          job.include_probabilities);
  if (!segmentation.ok()) return segmentation.status();
  const auto encoded = EncodeMask(segmentation->mask, job.mask_encoding);
  if (!encoded.ok()) return encoded.status();

  auto& response = *job.response;
  response.set_model(job.model->name);
  response.set_model_version(job.model->version);
  auto* mask = response.mutable_mask();
  mask->set_width(job.image.width);
  mask->set_height(job.image.height);
  mask->set_encoding(job.mask_encoding);
  mask->set_data(*encoded);
  if (job.include_probabilities) {
    auto* probabilities = response.mutable_probabilities();
    probabilities->set_width(job.image.width);
    probabilities->set_height(job.image.height);
    probabilities->set_num_classes(classes);
    probabilities->set_data(
        reinterpret_cast<const char*>(segmentation->probabilities.data()),
        segmentation->probabilities.size() * sizeof(float));
  }
  response.mutable_timing()->set_postprocess_us(MicrosSince(start));
  return absl::OkStatus();
}

// Calls `fn`; an exception becomes a status, so that none leaves the worker
// and every job is completed: bad_alloc as RESOURCE_EXHAUSTED, anything else
// as INTERNAL (the server's own bug).
template <typename Fn>
auto Contained(absl::string_view doing, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: cannot ", doing));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot ", doing, ": ", e.what()));
  }
}

// Runs one forward pass over `jobs` (one model version, one input shape) on
// the version's engine for `slot`; returns the logits, or the pass's error.
absl::StatusOr<FloatTensor> Forward(
    const std::vector<std::unique_ptr<SegmentJob>>& jobs, int slot) {
  const SegmentJob& first = *jobs.front();
  const PreparedImage& shape = first.image;
  FloatTensor input;
  input.shape = {static_cast<int64_t>(jobs.size()), shape.channels,
                 shape.padded_height, shape.padded_width};
  const size_t image_size = shape.chw.size();
  input.values.resize(jobs.size() * image_size);
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::memcpy(input.values.data() + i * image_size, jobs[i]->image.chw.data(),
                image_size * sizeof(float));
  }
  const auto& engines = first.model->engines;
  absl::StatusOr<FloatTensor> logits =
      engines[slot % engines.size()]->Forward(input);
  // A TorchScript module may return anything; only NCHW logits, one per job,
  // are usable.
  if (logits.ok() && (logits->shape.size() != 4 ||
                      logits->shape[0] != static_cast<int64_t>(jobs.size()))) {
    return absl::InternalError("model returned logits of an unusable shape");
  }
  return logits;
}

// Runs `jobs` and completes each. A batch that runs out of memory is split in
// halves and each half tried again, so that only a single image that does
// not fit fails.
void RunBatch(std::vector<std::unique_ptr<SegmentJob>> jobs, int slot) {
  const absl::Time start = absl::Now();
  for (const auto& job : jobs) {
    job->response->mutable_timing()->set_queue_us(
        absl::ToInt64Microseconds(start - job->admitted));
  }
  absl::StatusOr<FloatTensor> logits =
      Contained("run the batch", [&] { return Forward(jobs, slot); });
  if (absl::IsResourceExhausted(logits.status()) && jobs.size() > 1) {
    std::vector<std::unique_ptr<SegmentJob>> second_half(
        std::make_move_iterator(jobs.begin() + jobs.size() / 2),
        std::make_move_iterator(jobs.end()));
    jobs.resize(jobs.size() / 2);
    RunBatch(std::move(jobs), slot);
    RunBatch(std::move(second_half), slot);
    return;
  }
  const int64_t inference_us = MicrosSince(start);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SegmentJob& job = *jobs[i];
    if (!logits.ok()) {
      job.done(logits.status());
      continue;
    }
    const auto& dims = logits->shape;
    const size_t per_image = dims[1] * dims[2] * dims[3];
    auto* timing = job.response->mutable_timing();
    timing->set_inference_us(inference_us);
    timing->set_batch_size(static_cast<int>(jobs.size()));
    job.done(Contained("finish the response", [&] {
      return FinishJob(job, logits->values.data() + i * per_image,
                       static_cast<int>(dims[1]), static_cast<int>(dims[2]),
                       static_cast<int>(dims[3]));
    }));
  }
}

}  // namespace

SegmentExecutor::SegmentExecutor(const ExecutorOptions& options)
    : batcher_(options.batcher) {
  for (int slot = 0; slot < options.slots; ++slot) {
    workers_.emplace_back([this, slot] { WorkerLoop(slot); });
  }
}

SegmentExecutor::~SegmentExecutor() { Stop(); }

void SegmentExecutor::Stop() {
  batcher_.Close();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void SegmentExecutor::WorkerLoop(int slot) {
  while (true) {
    std::vector<std::unique_ptr<SegmentJob>> batch = batcher_.NextBatch();
    if (batch.empty()) return;  // closed and drained
    RunBatch(std::move(batch), slot);
  }
}

}  // namespace unet
