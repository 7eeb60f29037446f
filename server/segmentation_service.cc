#include "server/segmentation_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/unet_geometry.h"
#include "server/grpc_status.h"
#include "server/image_decoder.h"
#include "server/preprocess.h"

namespace unet {
namespace {

using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::ModelInfo;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

void LogFailure(const char* method, const std::string& request_id,
                const std::string& model, const absl::Status& status) {
  LogEvent("rpc_failed", {{"method", method},
                          {"request_id", request_id},
                          {"model", model},
                          {"code", absl::StatusCodeToString(status.code())},
                          {"message", status.message()}});
}

ModelInfo DescribeModel(const LoadedModel& model) {
  const ModelConfig& config = model.config;
  ModelInfo info;
  info.set_name(model.name);
  info.set_version(model.version);
  info.set_format(config.format());
  info.set_input_channels(config.architecture().input_channels());
  info.set_num_classes(config.architecture().num_classes());
  *info.mutable_class_names() = config.class_names();
  *info.mutable_valid_input_sizes() = config.valid_input_sizes();
  info.set_context_margin(ContextMargin(config.architecture().channels_size()));
  info.set_device(model.engine->device());
  info.mutable_training_metrics()->insert(config.training().metrics().begin(),
                                          config.training().metrics().end());
  return info;
}

}  // namespace

SegmentationService::SegmentationService(const ModelManager& models,
                                         SegmentExecutor& executor,
                                         const ServiceOptions& options)
    : models_(models), executor_(executor), options_(options) {}

absl::StatusOr<std::unique_ptr<SegmentJob>> SegmentationService::Admit(
    const SegmentRequest& request, SegmentResponse* response) const {
  const absl::Time start = absl::Now();
  if (request.resize_mode() == SegmentRequest::OVERLAP_TILE) {
    return absl::UnimplementedError(
        "resize_mode OVERLAP_TILE is not implemented yet");
  }
  if (!SegmentRequest::ResizeMode_IsValid(request.resize_mode())) {
    return absl::InvalidArgumentError("unknown resize_mode");
  }
  if (!segmentation::v1::MaskEncoding_IsValid(request.mask_encoding())) {
    return absl::InvalidArgumentError("unknown mask_encoding");
  }
  auto job = std::make_unique<SegmentJob>();
  ASSIGN_OR_RETURN(job->model,
                   models_.Find(request.model(), request.model_version()));
  ASSIGN_OR_RETURN(const cv::Mat pixels,
                   DecodeImage(request.image(), options_.max_pixels));
  ASSIGN_OR_RETURN(job->image, Preprocess(pixels, job->model->config));
  job->include_probabilities = request.include_probabilities();
  job->mask_encoding = request.mask_encoding();
  job->response = response;
  response->set_request_id(request.request_id());
  response->mutable_timing()->set_preprocess_us(
      absl::ToInt64Microseconds(absl::Now() - start));
  return job;
}

grpc::ServerUnaryReactor* SegmentationService::Segment(
    grpc::CallbackServerContext* context, const SegmentRequest* request,
    SegmentResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto fail = [reactor, request](const absl::Status& status) {
    LogFailure("Segment", request->request_id(), request->model(), status);
    reactor->Finish(ToGrpcStatus(status));
  };
  absl::StatusOr<std::unique_ptr<SegmentJob>> job = Admit(*request, response);
  if (!job.ok()) {
    fail(job.status());
    return reactor;
  }
  // The request outlives the job: gRPC frees it after Finish.
  (*job)->done = [reactor, fail](const absl::Status& status) {
    if (status.ok()) {
      reactor->Finish(grpc::Status::OK);
    } else {
      fail(status);
    }
  };
  if (absl::Status submitted = executor_.Submit(std::move(*job));
      !submitted.ok()) {
    fail(submitted);
  }
  return reactor;
}

grpc::ServerUnaryReactor* SegmentationService::GetModelInfo(
    grpc::CallbackServerContext* context, const GetModelInfoRequest* request,
    ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto model = models_.Find(request->model(), request->model_version());
  if (!model.ok()) {
    LogFailure("GetModelInfo", "", request->model(), model.status());
    reactor->Finish(ToGrpcStatus(model.status()));
    return reactor;
  }
  *response = DescribeModel(**model);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace unet
