#include "server/scheduling/tiled_request.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/imaging/postprocess.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {
namespace {

using segmentation::v1::SegmentResponse;

class TiledRequest : public std::enable_shared_from_this<TiledRequest> {
 public:
  TiledRequest(cv::Mat image, const TilePlan& plan,
               std::unique_ptr<SegmentJob> request, SubmitTile submit,
               int tiles_in_flight)
      : image_(std::move(image)),
        plan_(plan),
        request_(std::move(request)),
        submit_(std::move(submit)),
        tiles_in_flight_(std::max(1, tiles_in_flight)),
        classes_(static_cast<int>(
            request_->model->config.architecture().num_classes())) {}

  // Allocates the mask (and probabilities) in the response; on failure
  // completes the request.
  bool Allocate();

  // Queues tiles until `tiles_in_flight` are queued or running.
  void SubmitMore();

 private:
  absl::StatusOr<std::unique_ptr<SegmentJob>> TileJob(int64_t index);
  absl::Status Paste(const InputWindow& window, const Segmentation& tile);
  void TileDone(const absl::Status& status,
                const segmentation::v1::Timing& timing);
  // Records `status` as the request's failure. Requires mutex_.
  void Fail(const absl::Status& status);
  // Returns whether the request is over and this caller is to finish it.
  // Requires mutex_.
  bool TakeFinish();
  void Finish();

  const cv::Mat image_;
  const TilePlan plan_;
  const std::unique_ptr<SegmentJob> request_;
  const SubmitTile submit_;
  const int tiles_in_flight_;
  const int classes_;
  // Views into the response: the tiles write disjoint parts, unlocked.
  cv::Mat mask_;
  float* probabilities_ = nullptr;
  std::string raw_mask_;  // the mask's pixels when the response is a PNG

  std::atomic<bool> failed_{false};  // read by the tiles' `cancelled`
  std::mutex mutex_;
  int64_t next_tile_ = 0;
  std::vector<int64_t> retry_;  // refused by a full queue, to queue again
  int64_t in_flight_ = 0;
  int64_t tiles_done_ = 0;
  absl::Status failure_;
  bool finished_ = false;
  int64_t queue_us_ = 0, inference_us_ = 0, postprocess_us_ = 0;
  int64_t batch_size_sum_ = 0;
};

bool TiledRequest::Allocate() {
  SegmentResponse& response = *request_->response;
  const size_t pixels = size_t{static_cast<size_t>(plan_.image_height)} *
                        static_cast<size_t>(plan_.image_width);
  try {
    // A RAW mask is the response's bytes themselves: no copy at the end.
    std::string& mask_bytes = request_->mask_encoding == segmentation::v1::RAW
                                  ? *response.mutable_mask()->mutable_data()
                                  : raw_mask_;
    mask_bytes.resize(pixels);
    mask_ = cv::Mat(plan_.image_height, plan_.image_width, CV_8U,
                    mask_bytes.data());
    if (request_->include_probabilities) {
      std::string& data = *response.mutable_probabilities()->mutable_data();
      data.resize(pixels * classes_ * sizeof(float));
      probabilities_ = reinterpret_cast<float*>(data.data());
    }
  } catch (const std::bad_alloc&) {
    request_->done(absl::ResourceExhaustedError(
        absl::StrCat("out of memory for the mask of a ", plan_.image_width, "x",
                     plan_.image_height, " image")));
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<SegmentJob>> TiledRequest::TileJob(
    int64_t index) {
  const InputWindow window = plan_.Window(index);
  auto job = std::make_unique<SegmentJob>();
  job->model = request_->model;
  absl::StatusOr<PreparedImage> input =
      PrepareWindow(image_, request_->model->config, window);
  if (!input.ok()) return input.status();
  job->image = *std::move(input);
  job->include_probabilities = request_->include_probabilities;
  job->priority = request_->priority;
  job->deadline = request_->deadline;
  auto self = shared_from_this();
  job->cancelled = [self] {
    return self->failed_.load() || self->request_->cancelled();
  };
  // The tile's own response collects its timing.
  auto scratch = std::make_shared<SegmentResponse>();
  job->response = scratch.get();
  job->done = [self, scratch](const absl::Status& status) {
    self->TileDone(status, scratch->timing());
  };
  job->deliver_tile = [self, window](Segmentation tile) {
    return self->Paste(window, tile);
  };
  return job;
}

void TiledRequest::SubmitMore() {
  while (true) {
    int64_t index = 0;
    {
      std::lock_guard lock(mutex_);
      if (!failure_.ok() || in_flight_ >= tiles_in_flight_) return;
      if (!retry_.empty()) {
        index = retry_.back();
        retry_.pop_back();
      } else if (next_tile_ < plan_.tiles()) {
        index = next_tile_++;
      } else {
        return;
      }
      ++in_flight_;
    }
    // Unlocked: queueing may complete jobs (evicted, expired) on this
    // thread, this request's own tiles among them.
    absl::StatusOr<std::unique_ptr<SegmentJob>> job = TileJob(index);
    const absl::Status queued =
        job.ok() ? submit_(*std::move(job)) : job.status();
    if (queued.ok()) continue;
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
      if (absl::IsResourceExhausted(queued) && in_flight_ > 0) {
        // The queue is full of other work: a tile of ours that returns
        // makes room and queues this one again.
        retry_.push_back(index);
        return;
      }
      Fail(queued);
      finish = TakeFinish();
    }
    if (finish) Finish();
    return;
  }
}

absl::Status TiledRequest::Paste(const InputWindow& window,
                                 const Segmentation& tile) {
  const cv::Rect written(window.written_left, window.written_top,
                         window.written_width, window.written_height);
  if (tile.mask.size() != written.size()) {
    return absl::InternalError("a tile's mask is not the size it writes");
  }
  tile.mask.copyTo(mask_(written));
  if (probabilities_ == nullptr) return absl::OkStatus();
  const size_t tile_plane = written.area();
  if (tile.probabilities.size() != tile_plane * classes_) {
    return absl::InternalError("a tile's probabilities have another size");
  }
  const size_t plane = size_t{static_cast<size_t>(plan_.image_height)} *
                       static_cast<size_t>(plan_.image_width);
  for (int c = 0; c < classes_; ++c) {
    for (int y = 0; y < written.height; ++y) {
      std::memcpy(probabilities_ + c * plane +
                      static_cast<size_t>(written.y + y) * plan_.image_width +
                      written.x,
                  tile.probabilities.data() + c * tile_plane +
                      static_cast<size_t>(y) * written.width,
                  written.width * sizeof(float));
    }
  }
  return absl::OkStatus();
}

void TiledRequest::TileDone(const absl::Status& status,
                            const segmentation::v1::Timing& timing) {
  bool finish = false;
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    if (status.ok()) {
      ++tiles_done_;
      queue_us_ += timing.queue_us();
      inference_us_ += timing.inference_us();
      postprocess_us_ += timing.postprocess_us();
      batch_size_sum_ += timing.batch_size();
    } else {
      Fail(status);
    }
    finish = TakeFinish();
  }
  if (finish) {
    Finish();
  } else {
    SubmitMore();
  }
}

void TiledRequest::Fail(const absl::Status& status) {
  if (failure_.ok()) failure_ = status;
  failed_ = true;
}

bool TiledRequest::TakeFinish() {
  const bool over =
      tiles_done_ == plan_.tiles() || (!failure_.ok() && in_flight_ == 0);
  if (!over || finished_) return false;
  finished_ = true;
  return true;
}

void TiledRequest::Finish() {
  // No tile is in flight: nothing else touches the response now.
  absl::Status status = failure_;
  SegmentResponse& response = *request_->response;
  if (status.ok()) {
    const absl::Time start = absl::Now();
    response.set_model(request_->model->name);
    response.set_model_version(request_->model->version);
    auto* mask = response.mutable_mask();
    mask->set_width(plan_.image_width);
    mask->set_height(plan_.image_height);
    mask->set_encoding(request_->mask_encoding);
    if (request_->mask_encoding != segmentation::v1::RAW) {
      absl::StatusOr<std::string> encoded =
          EncodeMask(mask_, request_->mask_encoding);
      if (encoded.ok()) {
        mask->set_data(*std::move(encoded));
      } else {
        status = encoded.status();
      }
    }
    if (probabilities_ != nullptr) {
      auto* probabilities = response.mutable_probabilities();
      probabilities->set_width(plan_.image_width);
      probabilities->set_height(plan_.image_height);
      probabilities->set_num_classes(classes_);
    }
    auto* timing = response.mutable_timing();
    timing->set_queue_us(queue_us_);
    timing->set_inference_us(inference_us_);
    timing->set_postprocess_us(postprocess_us_ +
                               absl::ToInt64Microseconds(absl::Now() - start));
    timing->set_tiles(static_cast<int32_t>(plan_.tiles()));
    timing->set_mean_tile_batch_size(static_cast<double>(batch_size_sum_) /
                                     plan_.tiles());
    timing->set_batch_size(static_cast<int32_t>(
        (batch_size_sum_ + plan_.tiles() / 2) / plan_.tiles()));
  }
  request_->done(status);
}

}  // namespace

void StartTiledRequest(cv::Mat image, const TilePlan& plan,
                       std::unique_ptr<SegmentJob> request, SubmitTile submit,
                       int tiles_in_flight) {
  auto tiled =
      std::make_shared<TiledRequest>(std::move(image), plan, std::move(request),
                                     std::move(submit), tiles_in_flight);
  if (tiled->Allocate()) tiled->SubmitMore();
}

}  // namespace unet
