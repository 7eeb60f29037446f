#include "server/scheduling/segment_executor.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <iterator>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/imaging/postprocess.h"
#include "server/scheduling/contained.h"

namespace unet {
namespace {

int64_t MicrosSince(absl::Time start) {
  return absl::ToInt64Microseconds(absl::Now() - start);
}

// What one forward pass over a batch gave: the logits when a job asked for
// probabilities, else only the class labels (a byte a pixel, from the
// device).
struct BatchOutput {
  FloatTensor logits;
  LabelTensor labels;
  bool has_logits = false;

  // Returns image i's segmentation, cut to the job's image.
  absl::StatusOr<Segmentation> Extract(size_t i, const SegmentJob& job) const {
    if (has_logits) {
      const auto& dims = logits.shape;
      const size_t per_image = dims[1] * dims[2] * dims[3];
      return ExtractSegmentation(
          logits.values.data() + i * per_image, static_cast<int>(dims[1]),
          static_cast<int>(dims[2]), static_cast<int>(dims[3]), job.image,
          job.include_probabilities);
    }
    const auto& dims = labels.shape;
    const size_t per_image = dims[1] * dims[2];
    absl::StatusOr<cv::Mat> mask = ExtractMask(
        labels.values.data() + i * per_image, static_cast<int>(dims[1]),
        static_cast<int>(dims[2]), job.image);
    if (!mask.ok()) return mask.status();
    return Segmentation{*std::move(mask), {}};
  }

  int classes() const { return has_logits ? logits.shape[1] : 0; }
};

// Completes one job from image i of the batch's output.
absl::Status FinishJob(SegmentJob& job, const BatchOutput& output, size_t i) {
  const absl::Time start = absl::Now();
  auto segmentation = output.Extract(i, job);
  if (!segmentation.ok()) return segmentation.status();
  if (job.deliver_tile) {
    const absl::Status delivered = job.deliver_tile(*std::move(segmentation));
    job.response->mutable_timing()->set_postprocess_us(MicrosSince(start));
    return delivered;
  }
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
    probabilities->set_num_classes(output.classes());
    probabilities->set_data(
        reinterpret_cast<const char*>(segmentation->probabilities.data()),
        segmentation->probabilities.size() * sizeof(float));
  }
  response.mutable_timing()->set_postprocess_us(MicrosSince(start));
  return absl::OkStatus();
}

// Runs one forward pass over `jobs` (one model version, one input shape) on
// the version's engine for `slot`; returns its output, or the pass's error.
// A lone job's network input is moved into the pass, not copied.
absl::StatusOr<BatchOutput> Forward(
    const std::vector<std::unique_ptr<SegmentJob>>& jobs, int slot) {
  const SegmentJob& first = *jobs.front();
  const PreparedImage& shape = first.image;
  FloatTensor input;
  input.shape = {static_cast<int64_t>(jobs.size()), shape.channels,
                 shape.padded_height, shape.padded_width};
  const size_t image_size = shape.chw.size();
  if (jobs.size() == 1) {
    // A lone job's input is the batch; RunBatch frees it after the pass
    // anyway, and a batch of one is never retried.
    input.values = std::move(jobs.front()->image.chw);
  } else {
    input.values.resize(jobs.size() * image_size);
    for (size_t i = 0; i < jobs.size(); ++i) {
      std::memcpy(input.values.data() + i * image_size,
                  jobs[i]->image.chw.data(), image_size * sizeof(float));
    }
  }
  const auto& engines = first.model->engines;
  InferenceEngine& engine = *engines[slot % engines.size()];
  const int64_t images = static_cast<int64_t>(jobs.size());
  BatchOutput output;
  output.has_logits =
      std::any_of(jobs.begin(), jobs.end(),
                  [](const auto& job) { return job->include_probabilities; });
  // A TorchScript module may return anything; only one output per job, of
  // the expected rank, is usable.
  if (output.has_logits) {
    absl::StatusOr<FloatTensor> logits = engine.Forward(input);
    if (!logits.ok()) return logits.status();
    if (logits->shape.size() != 4 || logits->shape[0] != images) {
      return absl::InternalError("model returned logits of an unusable shape");
    }
    output.logits = *std::move(logits);
  } else {
    absl::StatusOr<LabelTensor> labels = engine.ForwardLabels(input);
    if (!labels.ok()) return labels.status();
    if (labels->shape.size() != 3 || labels->shape[0] != images) {
      return absl::InternalError("model returned labels of an unusable shape");
    }
    output.labels = *std::move(labels);
  }
  return output;
}

// Runs `jobs` and completes each: on `finisher` when it has room and
// `others_waiting` says jobs wait for a worker (this one then starts on
// them sooner), else on this worker, which has nothing else to do: a
// request alone is then spared a hand-off between threads. A batch that
// runs out of memory is split in halves and each half tried again, so that
// only a single image that does not fit fails.
void RunBatch(std::vector<std::unique_ptr<SegmentJob>> jobs, int slot,
              WorkPool* finisher, const std::function<bool()>& others_waiting) {
  const absl::Time start = absl::Now();
  for (const auto& job : jobs) {
    job->response->mutable_timing()->set_queue_us(
        absl::ToInt64Microseconds(start - job->admitted));
  }
  absl::StatusOr<BatchOutput> output =
      Contained("run the batch", [&] { return Forward(jobs, slot); });
  if (absl::IsResourceExhausted(output.status()) && jobs.size() > 1) {
    std::vector<std::unique_ptr<SegmentJob>> second_half(
        std::make_move_iterator(jobs.begin() + jobs.size() / 2),
        std::make_move_iterator(jobs.end()));
    jobs.resize(jobs.size() / 2);
    RunBatch(std::move(jobs), slot, finisher, others_waiting);
    RunBatch(std::move(second_half), slot, finisher, others_waiting);
    return;
  }
  const int64_t inference_us = MicrosSince(start);
  if (!output.ok()) {
    for (const auto& job : jobs) job->done(output.status());
    return;
  }
  for (const auto& job : jobs) {
    // Only the geometry is needed from here on: free the network input, so
    // that jobs waiting to be finished hold no more than their output.
    std::vector<float>().swap(job->image.chw);
    auto* timing = job->response->mutable_timing();
    timing->set_inference_us(inference_us);
    timing->set_batch_size(static_cast<int>(jobs.size()));
  }
  if (!others_waiting()) finisher = nullptr;
  std::shared_ptr<const BatchOutput> shared_output;
  const absl::Status shared = Contained("keep the batch's output", [&] {
    shared_output = std::make_shared<const BatchOutput>(*std::move(output));
    return absl::OkStatus();
  });
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!shared.ok()) {
      jobs[i]->done(shared);
      continue;
    }
    // Moving into a shared_ptr leaves `jobs[i]` as it was if it throws.
    std::shared_ptr<SegmentJob> job;
    try {
      job = std::move(jobs[i]);
    } catch (const std::bad_alloc&) {
      jobs[i]->done(absl::ResourceExhaustedError("out of memory"));
      continue;
    }
    auto finish = [job, shared_output, i] {
      job->done(Contained("finish the response",
                          [&] { return FinishJob(*job, *shared_output, i); }));
    };
    bool queued = false;
    try {
      queued = finisher != nullptr && finisher->TrySubmit(0, finish).ok();
    } catch (const std::bad_alloc&) {
      // Finished here instead.
    }
    if (!queued) finish();
  }
}

// The batcher's options, told how many workers call it and, where the
// workers share CPUs, that a lone batch runs on all of them alone.
BatcherOptions WithWorkers(const ExecutorOptions& options) {
  BatcherOptions batcher = options.batcher;
  batcher.workers = std::max(1, options.slots);
  batcher.exclusive_lone_batches =
      options.set_threads && options.shared_cpus > 0 && options.slots > 1;
  return batcher;
}

}  // namespace

SegmentExecutor::SegmentExecutor(const ExecutorOptions& options)
    : slots_(std::max(1, options.slots)),
      shared_cpus_(options.set_threads ? options.shared_cpus : 0),
      set_threads_(options.set_threads),
      batcher_(WithWorkers(options)) {
  if (options.finish_threads > 0) {
    WorkPoolOptions finishing;
    finishing.threads = options.finish_threads;
    // Bounded, so that finished batches cannot pile up in memory: past this
    // the workers finish their jobs themselves and slow down.
    finishing.max_queued = 4 * options.finish_threads;
    finisher_ = std::make_unique<WorkPool>(finishing);
  }
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
  if (finisher_) finisher_->Stop();  // runs what is queued, then joins
}

void SegmentExecutor::WorkerLoop(int slot) {
  int threads = 0;  // this worker's intra-op threads, once set
  while (true) {
    // Worker 0 takes a lone job and only it widens past its plan's share:
    // libgomp sleeps at every barrier instead of spinning once the process
    // holds more OpenMP threads than CPUs, idle teams included, and a
    // second worker that once widened would keep its idle team (a pass
    // 5-13 % slower on two CPUs, docs/performance.md). While it runs wide
    // the batcher gives the others nothing (exclusive_lone_batches).
    bool lone = false;
    std::vector<std::unique_ptr<SegmentJob>> batch =
        batcher_.NextBatch(/*first_choice=*/slot == 0, &lone);
    if (batch.empty()) return;  // closed and drained
    if (shared_cpus_ > 0) {
      const int share =
          lone ? shared_cpus_ : std::max(1, shared_cpus_ / slots_);
      // Changing LibTorch's thread count rebuilds a thread pool: only when
      // the share moves.
      if (share != threads) set_threads_(threads = share);
    }
    RunBatch(std::move(batch), slot, finisher_.get(),
             [this] { return batcher_.queue_depth() > 0; });
  }
}

}  // namespace unet
