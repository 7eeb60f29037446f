#ifndef SERVER_SCHEDULING_SEGMENT_JOB_H_
#define SERVER_SCHEDULING_SEGMENT_JOB_H_

// One admitted Segment request on its way from the RPC handler through the
// queue to the engine and back.

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/imaging/postprocess.h"
#include "model/imaging/preprocess.h"
#include "segmentation/v1/segmentation.pb.h"
#include "server/lifecycle/model_manager.h"

namespace unet {

struct SegmentJob {
  // The network input's pixels and bytes, by which queue and batches are
  // bounded.
  int64_t input_pixels() const {
    return int64_t{image.padded_height} * image.padded_width;
  }
  int64_t input_bytes() const {
    return input_pixels() * image.channels * int64_t{sizeof(float)};
  }

  // The version the request was admitted with; it stays loaded until the job
  // is done.
  std::shared_ptr<const LoadedModel> model;
  PreparedImage image;
  bool include_probabilities = false;
  segmentation::v1::MaskEncoding mask_encoding = segmentation::v1::PNG;
  segmentation::v1::SegmentRequest::Priority priority =
      segmentation::v1::SegmentRequest::ROUTINE;
  absl::Time admitted;  // when it entered the queue
  // Set for the parts of one request (its tiles, its frames): when the
  // request was admitted. The batcher queues such a part behind the jobs of
  // requests admitted earlier, so that under load the parts of one request
  // run together and it finishes, rather than every request's parts taking
  // turns and all finishing late.
  absl::Time request_admitted = absl::InfinitePast();
  absl::Time deadline = absl::InfiniteFuture();  // the caller's deadline
  std::function<bool()> cancelled = [] { return false; };  // caller gone?
  // Filled by the executor; owned by the RPC, which outlives the job.
  segmentation::v1::SegmentResponse* response = nullptr;
  // Called exactly once, with the outcome, after `response` is filled.
  std::function<void(const absl::Status&)> done;
  // Set for one tile of a tiled request (server/scheduling/tiled_request):
  // the executor hands the tile's segmentation (its written pixels) here
  // instead of filling `response`, which then only collects its timing.
  std::function<absl::Status(Segmentation)> deliver_tile;
};

}  // namespace unet

#endif  // SERVER_SCHEDULING_SEGMENT_JOB_H_
