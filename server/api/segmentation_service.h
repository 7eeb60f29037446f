#ifndef SERVER_API_SEGMENTATION_SERVICE_H_
#define SERVER_API_SEGMENTATION_SERVICE_H_

// The gRPC edge of the server. Segment: handler -> decode pool (bounded) ->
// decode/validate -> executor queue -> engine -> postprocess -> reply.
// Errors are absl::Status until ToGrpcStatus here.

#include <atomic>
#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "server/imaging/dicom_decoder.h"
#include "server/imaging/image_decoder.h"
#include "server/lifecycle/model_manager.h"
#include "server/observability/metrics.h"
#include "server/scheduling/segment_executor.h"
#include "server/scheduling/tiled_request.h"
#include "server/scheduling/work_pool.h"
#include "server/security/bearer_tokens.h"

namespace unet {

struct ServiceOptions {
  DecodeLimits decode;  // per image; more is refused
  // Network input pixels of one pass (the image padded to a valid size).
  // An image that pads to more is tiled (model/imaging/tiling.h), or
  // refused for a retain_dim model, which cannot be tiled. 0: what a square
  // image of decode.max_pixels pads to.
  int64_t max_input_pixels = 0;
  // Network input pixels above which an image is tiled even when its pass
  // would fit max_input_pixels (models that can be tiled only): the result
  // is the same, and a request's working memory stays that of a few tiles.
  // 0: only above max_input_pixels (SegmentationServer sets it on CPUs).
  int64_t tile_above_pixels = 0;
  // Network input side of a tile, rounded up to a valid size (0: set by the
  // server per device).
  int tile_size = 572;
  // Tiled (or augmented) requests being segmented at once; more get
  // RESOURCE_EXHAUSTED. Each holds its decoded image and its mask (and
  // probabilities, if asked) outside the queue's byte bound.
  int max_tiled_requests = 8;
  // Tiles of one request queued or running at once: its memory bound.
  int tiles_in_flight = 4;
  // Averages every request's soft-max over the 8 flips and quarter turns of
  // its image, as if each asked for test_time_augmentation.
  bool test_time_augmentation = false;
  WorkPoolOptions decode_pool;  // where requests are decoded and prepared
  // What GetModelInfo reports of how the server runs its passes.
  segmentation::v1::ExecutionPlan execution_plan;
  // Bearer tokens every call must present; null: no authentication. The
  // health service is not this service's, so probes need no token.
  std::shared_ptr<BearerTokens> tokens;
};

// Returns what a square image of `max_pixels` pads to for the seed U-Net:
// the default budget of one pass.
int64_t DefaultMaxInputPixels(int64_t max_pixels);

// Largest image test-time augmentation takes (4096 x 4096): its 8 views and
// their summed probabilities are held whole.
inline constexpr int64_t kMaxTestTimeAugmentationPixels = int64_t{1} << 24;

// Longest request_id and model name accepted: they are echoed and logged.
inline constexpr size_t kMaxRequestStringBytes = 256;

class SegmentationService final
    : public segmentation::v1::Segmentation::CallbackService {
 public:
  SegmentationService(const ModelManager& models, SegmentExecutor& executor,
                      ServerMetrics& metrics, const ServiceOptions& options);

  grpc::ServerUnaryReactor* Segment(
      grpc::CallbackServerContext* context,
      const segmentation::v1::SegmentRequest* request,
      segmentation::v1::SegmentResponse* response) override;

  grpc::ServerUnaryReactor* GetModelInfo(
      grpc::CallbackServerContext* context,
      const segmentation::v1::GetModelInfoRequest* request,
      segmentation::v1::ModelInfo* response) override;

  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const segmentation::v1::ListModelsRequest* request,
      segmentation::v1::ListModelsResponse* response) override;

  // Stops decoding: the queued requests are decoded and handed on, then the
  // pool's threads end. Called when draining, before the executor stops.
  void StopDecoding() { decode_pool_.Stop(); }

 private:
  // One Segment call in progress; gRPC keeps all of it alive until Finish.
  struct Call {
    grpc::CallbackServerContext* context = nullptr;
    const segmentation::v1::SegmentRequest* request = nullptr;
    segmentation::v1::SegmentResponse* response = nullptr;
    grpc::ServerUnaryReactor* reactor = nullptr;
    std::shared_ptr<const LoadedModel> model;  // null: none found
    absl::Time received;
  };

  // A request ready for the queue: its job, with the network input, or for
  // a request segmented tile by tile (tiled or averaged over views) the
  // decoded image and how to cut it.
  struct Admitted {
    std::unique_ptr<SegmentJob> job;
    std::optional<TiledRequestOptions> tiling;
    cv::Mat pixels;  // with tiling
    // A multi-frame DICOM object: each frame's network input, segmented as
    // jobs of their own (frame_request.h); `job` then carries no image.
    std::vector<PreparedImage> frames;
    // Set when the answer is a DICOM Segmentation of these frames.
    std::shared_ptr<const DicomSource> dicom_source;
  };

  // OK without tokens, or when the call presents one of them.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  // Validates the request and turns its image into input for `model`.
  absl::StatusOr<Admitted> Admit(
      const segmentation::v1::SegmentRequest& request,
      std::shared_ptr<const LoadedModel> model,
      segmentation::v1::SegmentResponse* response) const;

  // Admits one image: a whole pass into admitted.job, or a tiled or
  // augmented request into admitted.tiling and admitted.pixels.
  absl::Status AdmitImage(cv::Mat pixels,
                          const segmentation::v1::SegmentRequest& request,
                          Admitted& admitted) const;

  // Each frame of a multi-frame object as a whole pass.
  absl::StatusOr<std::vector<PreparedImage>> PrepareFrames(
      const std::vector<cv::Mat>& frames,
      const segmentation::v1::SegmentRequest& request,
      const segmentation::v1::ModelConfig& config) const;

  // Answers a Segment call: metrics, one log line, in-flight count, reply.
  void FinishSegment(const Call& call, const absl::Status& status);

  // Runs on the decode pool: admits the call's request and queues its job,
  // or finishes the call.
  void AdmitAndQueue(const Call& call);

  const ModelManager& models_;
  SegmentExecutor& executor_;
  ServerMetrics& metrics_;
  const ServiceOptions options_;
  WorkPool decode_pool_;
  std::atomic<int> tiled_requests_{0};  // admitted and not yet answered
};

}  // namespace unet

#endif  // SERVER_API_SEGMENTATION_SERVICE_H_
