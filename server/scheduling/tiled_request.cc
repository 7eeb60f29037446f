#include "server/scheduling/tiled_request.h"

#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/imaging/postprocess.h"
#include "model/imaging/test_time_views.h"
#include "segmentation/v1/segmentation.pb.h"
#include "server/scheduling/contained.h"

namespace unet {
namespace {

using segmentation::v1::SegmentResponse;

// One view of the image (the image itself without test-time augmentation)
// and its tiles: tiles [first_tile, first_tile + plan.tiles()) of the
// request.
struct View {
  int view = 0;
  cv::Mat image;
  TilePlan plan;
  int64_t first_tile = 0;
};

class TiledRequest : public std::enable_shared_from_this<TiledRequest> {
 public:
  TiledRequest(std::vector<View> views, std::unique_ptr<SegmentJob> request,
               SubmitTile submit, const TiledRequestOptions& options)
      : views_(std::move(views)),
        height_(views_.front().plan.image_height),
        width_(views_.front().plan.image_width),
        tiles_(views_.back().first_tile + views_.back().plan.tiles()),
        request_(std::move(request)),
        submit_(std::move(submit)),
        tiles_in_flight_(std::max(1, options.tiles_in_flight)),
        averaged_(options.test_time_augmentation),
        classes_(static_cast<int>(
            request_->model->config.architecture().num_classes())) {}

  // Allocates the mask (and probabilities, or their sums over the views)
  // in the response; on failure completes the request.
  bool Allocate();

  // Queues tiles until `tiles_in_flight` are queued or running.
  void SubmitMore();

 private:
  absl::StatusOr<std::unique_ptr<SegmentJob>> TileJob(int64_t index);
  absl::Status Paste(const InputWindow& window, const Segmentation& tile);
  // Adds a tile of view `view`'s probabilities to their sums.
  absl::Status Accumulate(int view, const InputWindow& window,
                          const Segmentation& tile);
  void TileDone(const absl::Status& status,
                const segmentation::v1::Timing& timing);
  // Records `status` as the request's failure. Requires mutex_.
  void Fail(const absl::Status& status);
  // Returns whether the request is over and this caller is to finish it.
  // Requires mutex_.
  bool TakeFinish();
  void Finish();

  const std::vector<View> views_;
  const int height_, width_;  // of the image
  const int64_t tiles_;       // of all views
  const std::unique_ptr<SegmentJob> request_;
  const SubmitTile submit_;
  const int tiles_in_flight_;
  const bool averaged_;  // over the views (test-time augmentation)
  const int classes_;
  const absl::Time admitted_ = absl::Now();  // orders its tiles in the queue
  // Views into the response: the tiles write disjoint parts, unlocked.
  cv::Mat mask_;
  float* probabilities_ = nullptr;  // the response's, when asked
  std::string raw_mask_;  // the mask's pixels when the response is a PNG
  // With averaging: the probabilities summed over the views (the
  // response's own when asked), added to under sums_mutex_.
  float* sums_ = nullptr;
  std::vector<float> own_sums_;
  std::mutex sums_mutex_;

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
  const size_t pixels =
      size_t{static_cast<size_t>(height_)} * static_cast<size_t>(width_);
  try {
    // A RAW mask is the response's bytes themselves: no copy at the end.
    std::string& mask_bytes = request_->mask_encoding == segmentation::v1::RAW
                                  ? *response.mutable_mask()->mutable_data()
                                  : raw_mask_;
    mask_bytes.resize(pixels);
    mask_ = cv::Mat(height_, width_, CV_8U, mask_bytes.data());
    if (request_->include_probabilities) {
      std::string& data = *response.mutable_probabilities()->mutable_data();
      data.resize(pixels * classes_ * sizeof(float));
      probabilities_ = reinterpret_cast<float*>(data.data());
    }
    if (averaged_) {
      if (probabilities_ == nullptr) own_sums_.resize(pixels * classes_);
      sums_ = probabilities_ != nullptr ? probabilities_ : own_sums_.data();
    }
  } catch (const std::bad_alloc&) {
    request_->done(absl::ResourceExhaustedError(absl::StrCat(
        "out of memory for the mask of a ", width_, "x", height_, " image")));
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<SegmentJob>> TiledRequest::TileJob(
    int64_t index) {
  size_t v = views_.size() - 1;
  while (views_[v].first_tile > index) --v;
  const View& view = views_[v];
  const InputWindow window = view.plan.Window(index - view.first_tile);
  auto job = std::make_unique<SegmentJob>();
  job->model = request_->model;
  absl::StatusOr<PreparedImage> input =
      PrepareWindow(view.image, request_->model->config, window);
  if (!input.ok()) return input.status();
  job->image = *std::move(input);
  // Averaging needs every view's probabilities.
  job->include_probabilities = request_->include_probabilities || averaged_;
  job->priority = request_->priority;
  job->deadline = request_->deadline;
  job->request_admitted = admitted_;
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
  job->deliver_tile = [self, window, view = view.view](Segmentation tile) {
    return self->averaged_ ? self->Accumulate(view, window, tile)
                           : self->Paste(window, tile);
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
      } else if (next_tile_ < tiles_) {
        index = next_tile_++;
      } else {
        return;
      }
      ++in_flight_;
    }
    // Unlocked: queueing may complete jobs (evicted, expired) on this
    // thread, this request's own tiles among them.
    const absl::Status queued = Contained("queue a tile", [&] {
      absl::StatusOr<std::unique_ptr<SegmentJob>> job = TileJob(index);
      return job.ok() ? submit_(*std::move(job)) : job.status();
    });
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
  const size_t plane =
      size_t{static_cast<size_t>(height_)} * static_cast<size_t>(width_);
  for (int c = 0; c < classes_; ++c) {
    for (int y = 0; y < written.height; ++y) {
      std::memcpy(probabilities_ + c * plane +
                      static_cast<size_t>(written.y + y) * width_ + written.x,
                  tile.probabilities.data() + c * tile_plane +
                      static_cast<size_t>(y) * written.width,
                  written.width * sizeof(float));
    }
  }
  return absl::OkStatus();
}

absl::Status TiledRequest::Accumulate(int view, const InputWindow& window,
                                      const Segmentation& tile) {
  const cv::Rect written(window.written_left, window.written_top,
                         window.written_width, window.written_height);
  if (tile.probabilities.size() != written.area() * size_t(classes_)) {
    return absl::InternalError("a tile's probabilities have another size");
  }
  // Views overlap: the sums are locked.
  std::lock_guard lock(sums_mutex_);
  AddUnviewed(tile.probabilities.data(), written, view, classes_,
              cv::Size(width_, height_), sums_);
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
      tiles_done_ == tiles_ || (!failure_.ok() && in_flight_ == 0);
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
    if (averaged_) {
      MeanOverViews(sums_, classes_, static_cast<int>(views_.size()), mask_);
    }
    response.set_model(request_->model->name);
    response.set_model_version(request_->model->version);
    auto* mask = response.mutable_mask();
    mask->set_width(width_);
    mask->set_height(height_);
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
      probabilities->set_width(width_);
      probabilities->set_height(height_);
      probabilities->set_num_classes(classes_);
    }
    auto* timing = response.mutable_timing();
    timing->set_queue_us(queue_us_);
    timing->set_inference_us(inference_us_);
    timing->set_postprocess_us(postprocess_us_ +
                               absl::ToInt64Microseconds(absl::Now() - start));
    timing->set_tiles(static_cast<int32_t>(tiles_));
    timing->set_mean_tile_batch_size(static_cast<double>(batch_size_sum_) /
                                     tiles_);
    timing->set_batch_size(
        static_cast<int32_t>((batch_size_sum_ + tiles_ / 2) / tiles_));
  }
  request_->done(status);
}

}  // namespace

void StartTiledRequest(cv::Mat image, const TiledRequestOptions& options,
                       std::unique_ptr<SegmentJob> request, SubmitTile submit) {
  std::vector<View> views;
  const absl::Status planned = Contained("plan the tiles", [&] {
    const int count = options.test_time_augmentation ? kTestTimeViews : 1;
    int64_t tiles = 0;
    for (int v = 0; v < count; ++v) {
      View view;
      view.view = v;
      view.image = ViewOf(image, v);
      absl::StatusOr<TilePlan> plan =
          PlanTiles(view.image.rows, view.image.cols, options.tile_side,
                    request->model->config);
      if (!plan.ok()) return plan.status();
      view.plan = *plan;
      view.first_tile = tiles;
      tiles += plan->tiles();
      views.push_back(std::move(view));
    }
    return absl::OkStatus();
  });
  if (!planned.ok()) {
    request->done(planned);
    return;
  }
  auto tiled = std::make_shared<TiledRequest>(
      std::move(views), std::move(request), std::move(submit), options);
  if (tiled->Allocate()) tiled->SubmitMore();
}

}  // namespace unet
