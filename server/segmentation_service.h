#ifndef SERVER_SEGMENTATION_SERVICE_H_
#define SERVER_SEGMENTATION_SERVICE_H_

// The gRPC edge of the server. Segment: handler -> decode/validate ->
// executor queue -> engine -> postprocess -> reply. Errors are absl::Status
// until ToGrpcStatus here.

#include <cstdint>
#include <memory>

#include "segmentation/v1/segmentation.grpc.pb.h"
#include "server/model_manager.h"
#include "server/segment_executor.h"

namespace unet {

struct ServiceOptions {
  int64_t max_pixels = int64_t{4096} * 4096;  // per image; more is refused
};

class SegmentationService final
    : public segmentation::v1::Segmentation::CallbackService {
 public:
  SegmentationService(const ModelManager& models, SegmentExecutor& executor,
                      const ServiceOptions& options);

  grpc::ServerUnaryReactor* Segment(
      grpc::CallbackServerContext* context,
      const segmentation::v1::SegmentRequest* request,
      segmentation::v1::SegmentResponse* response) override;

  grpc::ServerUnaryReactor* GetModelInfo(
      grpc::CallbackServerContext* context,
      const segmentation::v1::GetModelInfoRequest* request,
      segmentation::v1::ModelInfo* response) override;

 private:
  // Resolves the model and turns the request's image into network input.
  absl::StatusOr<std::unique_ptr<SegmentJob>> Admit(
      const segmentation::v1::SegmentRequest& request,
      segmentation::v1::SegmentResponse* response) const;

  const ModelManager& models_;
  SegmentExecutor& executor_;
  const ServiceOptions options_;
};

}  // namespace unet

#endif  // SERVER_SEGMENTATION_SERVICE_H_
