#include "server/api/segmentation_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/imaging/preprocess.h"
#include "model/unet_geometry.h"
#include "server/api/grpc_status.h"
#include "server/imaging/image_decoder.h"

namespace unet {
namespace {

using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::ModelInfo;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

// Returns the call's deadline; none (infinite) when the client set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline - std::chrono::system_clock::now() >
      std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

ModelInfo DescribeModel(const LoadedModel& model,
                        const std::vector<VersionStatus>& versions) {
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
  info.set_device(model.devices());
  info.mutable_training_metrics()->insert(config.training().metrics().begin(),
                                          config.training().metrics().end());
  *info.mutable_versions() = {versions.begin(), versions.end()};
  return info;
}

}  // namespace

SegmentationService::SegmentationService(const ModelManager& models,
                                         SegmentExecutor& executor,
                                         ServerMetrics& metrics,
                                         const ServiceOptions& options)
    : models_(models),
      executor_(executor),
      metrics_(metrics),
      options_(options) {}

absl::StatusOr<std::unique_ptr<SegmentJob>> SegmentationService::Admit(
    const SegmentRequest& request, std::shared_ptr<const LoadedModel> model,
    SegmentResponse* response) const {
  const absl::Time start = absl::Now();
  if (request.resize_mode() == SegmentRequest::OVERLAP_TILE) {
    return absl::UnimplementedError(
        "resize_mode OVERLAP_TILE is not implemented yet");
  }
  if (!SegmentRequest::ResizeMode_IsValid(request.resize_mode())) {
    return absl::InvalidArgumentError("unknown resize_mode");
  }
  if (!SegmentRequest::Priority_IsValid(request.priority())) {
    return absl::InvalidArgumentError("unknown priority");
  }
  if (!segmentation::v1::MaskEncoding_IsValid(request.mask_encoding())) {
    return absl::InvalidArgumentError("unknown mask_encoding");
  }
  auto job = std::make_unique<SegmentJob>();
  job->model = std::move(model);
  ASSIGN_OR_RETURN(const cv::Mat pixels,
                   DecodeImage(request.image(), options_.max_pixels));
  ASSIGN_OR_RETURN(job->image, Preprocess(pixels, job->model->config));
  job->include_probabilities = request.include_probabilities();
  job->priority = request.priority();
  job->mask_encoding = request.mask_encoding();
  job->response = response;
  response->set_request_id(request.request_id());
  response->mutable_timing()->set_preprocess_us(
      absl::ToInt64Microseconds(absl::Now() - start));
  return job;
}

void SegmentationService::FinishSegment(grpc::ServerUnaryReactor* reactor,
                                        const SegmentRequest& request,
                                        const SegmentResponse& response,
                                        const LoadedModel* model,
                                        absl::Time received,
                                        const absl::Status& status) {
  const absl::Duration total = absl::Now() - received;
  ModelMetrics& metrics =
      model != nullptr ? *model->metrics : metrics_.unknown_model();
  metrics.RecordSegment(status, total, response.timing());
  const auto& t = response.timing();
  // Identifiers and timings only: never pixels, never request metadata.
  LogEvent("segment",
           {{"request_id", request.request_id()},
            {"model", model != nullptr ? model->name : request.model()},
            {"version", absl::StrCat(model != nullptr ? model->version : 0)},
            {"code", absl::StatusCodeToString(status.code())},
            {"total_us", absl::StrCat(absl::ToInt64Microseconds(total))},
            {"queue_us", absl::StrCat(t.queue_us())},
            {"preprocess_us", absl::StrCat(t.preprocess_us())},
            {"inference_us", absl::StrCat(t.inference_us())},
            {"postprocess_us", absl::StrCat(t.postprocess_us())},
            {"batch_size", absl::StrCat(t.batch_size())},
            {"message", status.message()}});
  metrics_.in_flight().Decrement();
  reactor->Finish(ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* SegmentationService::Segment(
    grpc::CallbackServerContext* context, const SegmentRequest* request,
    SegmentResponse* response) {
  const absl::Time received = absl::Now();
  metrics_.in_flight().Increment();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<const LoadedModel>> found =
      models_.Find(request->model(), request->model_version());
  if (!found.ok()) {
    FinishSegment(reactor, *request, *response, nullptr, received,
                  found.status());
    return reactor;
  }
  std::shared_ptr<const LoadedModel> model = *std::move(found);
  absl::StatusOr<std::unique_ptr<SegmentJob>> job =
      Admit(*request, model, response);
  if (!job.ok()) {
    FinishSegment(reactor, *request, *response, model.get(), received,
                  job.status());
    return reactor;
  }
  (*job)->deadline = DeadlineOf(*context);
  // The context, like request and response, lives until Finish.
  (*job)->cancelled = [context] { return context->IsCancelled(); };
  (*job)->done = [this, reactor, request, response, model,
                  received](const absl::Status& status) {
    FinishSegment(reactor, *request, *response, model.get(), received, status);
  };
  if (absl::Status submitted = executor_.Submit(std::move(*job));
      !submitted.ok()) {
    FinishSegment(reactor, *request, *response, model.get(), received,
                  submitted);
  }
  return reactor;
}

grpc::ServerUnaryReactor* SegmentationService::GetModelInfo(
    grpc::CallbackServerContext* context, const GetModelInfoRequest* request,
    ModelInfo* response) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto model = models_.Find(request->model(), request->model_version());
  if (model.ok()) {
    *response = DescribeModel(**model, models_.Versions((*model)->name));
  }
  ModelMetrics& metrics =
      model.ok() ? *(*model)->metrics : metrics_.unknown_model();
  metrics.RecordModelInfo(model.status(), absl::Now() - received);
  if (!model.ok()) {
    LogEvent("get_model_info",
             {{"model", request->model()},
              {"code", absl::StatusCodeToString(model.status().code())},
              {"message", model.status().message()}});
  }
  reactor->Finish(ToGrpcStatus(model.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SegmentationService::ListModels(
    grpc::CallbackServerContext* context,
    const segmentation::v1::ListModelsRequest* /*request*/,
    segmentation::v1::ListModelsResponse* response) {
  for (const std::string& name : models_.ModelNames()) {
    segmentation::v1::ModelStatus* model = response->add_models();
    model->set_name(name);
    model->set_is_default(name == models_.default_model());
    for (const VersionStatus& version : models_.Versions(name)) {
      *model->add_versions() = version;
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace unet
