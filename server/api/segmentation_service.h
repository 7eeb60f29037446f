#ifndef SERVER_API_SEGMENTATION_SERVICE_H_
#define SERVER_API_SEGMENTATION_SERVICE_H_

// The gRPC edge of the server. Segment: handler -> decode/validate ->
// executor queue -> engine -> postprocess -> reply. Errors are absl::Status
// until ToGrpcStatus here.

#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "server/lifecycle/model_manager.h"
#include "server/observability/metrics.h"
#include "server/scheduling/segment_executor.h"

namespace unet {

struct ServiceOptions {
  int64_t max_pixels = int64_t{4096} * 4096;  // per image; more is refused
};

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

 private:
  // Validates the request and turns its image into input for `model`.
  absl::StatusOr<std::unique_ptr<SegmentJob>> Admit(
      const segmentation::v1::SegmentRequest& request,
      std::shared_ptr<const LoadedModel> model,
      segmentation::v1::SegmentResponse* response) const;

  // Answers a Segment call: metrics, one log line, in-flight count, reply.
  // `model` is null when the request named no loaded model.
  void FinishSegment(grpc::ServerUnaryReactor* reactor,
                     const segmentation::v1::SegmentRequest& request,
                     const segmentation::v1::SegmentResponse& response,
                     const LoadedModel* model, absl::Time received,
                     const absl::Status& status);

  const ModelManager& models_;
  SegmentExecutor& executor_;
  ServerMetrics& metrics_;
  const ServiceOptions options_;
};

}  // namespace unet

#endif  // SERVER_API_SEGMENTATION_SERVICE_H_
