#include "server/api/segmentation_service.h"

#include <cmath>
#include <exception>
#include <iterator>
#include <new>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/imaging/preprocess.h"
#include "model/unet_geometry.h"
#include "server/api/grpc_status.h"
#include "server/imaging/dicom_decoder.h"
#include "server/imaging/dicom_seg.h"
#include "server/imaging/image_decoder.h"
#include "server/scheduling/frame_request.h"
#include "server/scheduling/tiled_request.h"

namespace unet {
namespace {

using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::Image;
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
                        const std::vector<VersionStatus>& versions,
                        const segmentation::v1::ExecutionPlan& plan) {
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
  *info.mutable_execution_plan() = plan;
  return info;
}

absl::Status CheckRequestFields(const SegmentRequest& request) {
  if (request.request_id().size() > kMaxRequestStringBytes ||
      request.model().size() > kMaxRequestStringBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id and model take at most ",
                     kMaxRequestStringBytes, " bytes"));
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
  if (request.model_version() < 0) {
    return absl::InvalidArgumentError("model_version is negative");
  }
  return absl::OkStatus();
}

// The bytes a request holds while it waits to be decoded.
int64_t RequestImageBytes(const SegmentRequest& request) {
  return static_cast<int64_t>(request.image().encoded().size() +
                              request.image().raw().data().size());
}

// A DICOM file's frames as its model maps them, with its header
// (dicom_decoder.h), or any other image as image_decoder.h decodes it (one
// frame, no header).
absl::StatusOr<DicomImage> DecodeRequestFrames(const Image& image,
                                               const DecodeLimits& limits,
                                               const ModelConfig& config) {
  if (IsDicomFile(image.encoded())) {
    return DecodeDicom(image.encoded(), limits, config.dicom_input());
  }
  ASSIGN_OR_RETURN(cv::Mat pixels, DecodeImage(image, limits));
  DicomImage decoded;
  decoded.frames.push_back(std::move(pixels));
  return decoded;
}

// Replaces the response's frame masks (RAW) by one DICOM Segmentation of
// `source` holding them all.
absl::Status AnswerWithSegmentation(const DicomSource& source,
                                    const LoadedModel& model,
                                    SegmentResponse& response) {
  std::vector<cv::Mat> masks;
  for (const segmentation::v1::Mask& frame : response.frame_masks()) {
    if (frame.data().size() != size_t{frame.width()} * frame.height()) {
      return absl::InternalError("a frame's mask has the wrong size");
    }
    const cv::Mat raw(static_cast<int>(frame.height()),
                      static_cast<int>(frame.width()), CV_8U,
                      const_cast<char*>(frame.data().data()));
    masks.push_back(raw.clone());
  }
  ASSIGN_OR_RETURN(
      std::string seg,
      WriteDicomSegmentation(source, masks,
                             {model.name, model.version, &model.config}));
  segmentation::v1::Mask& mask = *response.mutable_mask();
  mask.set_width(response.frame_masks(0).width());
  mask.set_height(response.frame_masks(0).height());
  mask.set_encoding(segmentation::v1::DICOM_SEG);
  mask.set_data(std::move(seg));
  response.clear_frame_masks();
  return absl::OkStatus();
}

}  // namespace

int64_t DefaultMaxInputPixels(int64_t max_pixels) {
  constexpr int kSeedLevels = 5;
  const auto side = static_cast<int64_t>(std::sqrt(double(max_pixels)));
  const int64_t padded =
      NextValidInputSide(side + 2 * ContextMargin(kSeedLevels), kSeedLevels);
  return padded * padded;
}

SegmentationService::SegmentationService(const ModelManager& models,
                                         SegmentExecutor& executor,
                                         ServerMetrics& metrics,
                                         const ServiceOptions& options)
    : models_(models),
      executor_(executor),
      metrics_(metrics),
      options_([&] {
        ServiceOptions o = options;
        if (o.max_input_pixels <= 0) {
          o.max_input_pixels = DefaultMaxInputPixels(o.decode.max_pixels);
        }
        if (o.tile_above_pixels <= 0) o.tile_above_pixels = o.max_input_pixels;
        return o;
      }()),
      decode_pool_(options.decode_pool) {}

absl::StatusOr<SegmentationService::Admitted> SegmentationService::Admit(
    const SegmentRequest& request, std::shared_ptr<const LoadedModel> model,
    SegmentResponse* response) const {
  const absl::Time start = absl::Now();
  Admitted admitted;
  auto& job = admitted.job;
  job = std::make_unique<SegmentJob>();
  job->model = std::move(model);
  const ModelConfig& config = job->model->config;
  ASSIGN_OR_RETURN(
      DicomImage decoded,
      DecodeRequestFrames(request.image(), options_.decode, config));
  const bool segmentation_object =
      request.mask_encoding() == segmentation::v1::DICOM_SEG;
  if (segmentation_object && decoded.source == nullptr) {
    return absl::InvalidArgumentError(
        "mask_encoding DICOM_SEG is for DICOM images only");
  }
  if (decoded.frames.size() > 1 || segmentation_object) {
    ASSIGN_OR_RETURN(admitted.frames,
                     PrepareFrames(decoded.frames, request, config));
    // The frames come back RAW and become one Segmentation at the end.
    if (segmentation_object) admitted.dicom_source = decoded.source;
  } else {
    RETURN_IF_ERROR(
        AdmitImage(std::move(decoded.frames.front()), request, admitted));
  }
  job->include_probabilities = request.include_probabilities();
  job->priority = request.priority();
  job->mask_encoding =
      segmentation_object ? segmentation::v1::RAW : request.mask_encoding();
  job->response = response;
  response->set_request_id(request.request_id());
  response->mutable_timing()->set_preprocess_us(
      absl::ToInt64Microseconds(absl::Now() - start));
  return admitted;
}

absl::Status SegmentationService::AdmitImage(cv::Mat pixels,
                                             const SegmentRequest& request,
                                             Admitted& admitted) const {
  std::unique_ptr<SegmentJob>& job = admitted.job;
  const ModelConfig& config = job->model->config;
  // Bound the pass, not just the image: a thin image pads to a network input
  // far larger than its pixel count. Such an image is tiled, with the same
  // result, unless the model stretches its output (retain_dim).
  const InputSize input = PaddedInputSize(pixels.rows, pixels.cols, config);
  const bool fits_one_pass = input.pixels() <= options_.max_input_pixels;
  const bool tiled =
      request.resize_mode() == SegmentRequest::OVERLAP_TILE ||
      (!config.architecture().retain_dim() &&
       (!fits_one_pass || input.pixels() > options_.tile_above_pixels));
  // The server-wide default applies to the models that can take it.
  const bool averaged =
      request.test_time_augmentation() ||
      (options_.test_time_augmentation && !config.architecture().retain_dim());
  if (averaged &&
      int64_t{pixels.rows} * pixels.cols > kMaxTestTimeAugmentationPixels) {
    // Its 8 views and their summed probabilities are held whole.
    return absl::InvalidArgumentError(
        absl::StrCat("test-time augmentation takes images of at most ",
                     kMaxTestTimeAugmentationPixels, " pixels"));
  }
  if (tiled || averaged) {
    TiledRequestOptions& tiling = admitted.tiling.emplace();
    tiling.tiles_in_flight = options_.tiles_in_flight;
    tiling.test_time_augmentation = averaged;
    // Views of an image that fits one pass are each one whole pass; tiles
    // are made small enough for the pass budget.
    const int levels = config.architecture().channels_size();
    const int fitting_side =
        static_cast<int>(std::sqrt(double(options_.max_input_pixels))) -
        ValidInputSides(levels).step;
    tiling.tile_side =
        tiled ? std::min(options_.tile_size, fitting_side)
              : static_cast<int>(std::max(input.height, input.width));
    // What PlanTiles refuses is refused here, before anything is queued.
    ASSIGN_OR_RETURN(const TilePlan plan, PlanTiles(pixels.rows, pixels.cols,
                                                    tiling.tile_side, config));
    if (int64_t{plan.tile_height} * plan.tile_width >
        options_.max_input_pixels) {
      return absl::FailedPreconditionError(
          "this server's pass budget (--max_input_pixels) is smaller than "
          "the smallest tile");
    }
    RETURN_IF_ERROR(CheckInputChannels(pixels, config));
    admitted.pixels = std::move(pixels);
  } else if (!fits_one_pass) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", pixels.cols, "x", pixels.rows, " image pads to a ", input.width,
        "x", input.height, " network input (", input.pixels(),
        " pixels); this server runs at most ", options_.max_input_pixels,
        " per pass, and this model (retain_dim) cannot be tiled"));
  } else {
    ASSIGN_OR_RETURN(job->image, Preprocess(pixels, config));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PreparedImage>> SegmentationService::PrepareFrames(
    const std::vector<cv::Mat>& frames, const SegmentRequest& request,
    const ModelConfig& config) const {
  if (request.resize_mode() == SegmentRequest::OVERLAP_TILE ||
      request.test_time_augmentation() || request.include_probabilities()) {
    return absl::InvalidArgumentError(
        "a multi-frame DICOM or DICOM_SEG request takes no OVERLAP_TILE, "
        "test-time augmentation or probabilities");
  }
  std::vector<PreparedImage> prepared;
  prepared.reserve(frames.size());
  for (const cv::Mat& frame : frames) {
    const InputSize input = PaddedInputSize(frame.rows, frame.cols, config);
    if (input.pixels() > options_.max_input_pixels) {
      return absl::InvalidArgumentError(
          absl::StrCat("frames of ", frame.cols, "x", frame.rows, " pad to ",
                       input.width, "x", input.height,
                       "; this server segments each frame of a "
                       "multi-frame object in one pass of at most ",
                       options_.max_input_pixels, " pixels"));
    }
    ASSIGN_OR_RETURN(PreparedImage image, Preprocess(frame, config));
    prepared.push_back(std::move(image));
  }
  return prepared;
}

void SegmentationService::FinishSegment(const Call& call,
                                        const absl::Status& status) {
  const absl::Duration total = absl::Now() - call.received;
  const LoadedModel* model = call.model.get();
  ModelMetrics& metrics =
      model != nullptr ? *model->metrics : metrics_.unknown_model();
  const auto& t = call.response->timing();
  metrics.RecordSegment(status, total, t);
  // Identifiers and timings only: never pixels, never request metadata.
  // LogEvent escapes and caps every value.
  LogEvent("segment",
           {{"request_id", call.request->request_id()},
            {"model", model != nullptr ? model->name : call.request->model()},
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
  call.reactor->Finish(ToGrpcStatus(status));
}

void SegmentationService::AdmitAndQueue(const Call& call) {
  // Ends once the job is queued (a batch waiting for it then takes it) or
  // refused.
  absl::Cleanup expected = [this] { executor_.EndExpectation(); };
  // A call may have waited here past its deadline, or been given up.
  if (call.context->IsCancelled()) {
    FinishSegment(call, absl::CancelledError("the call ended before decoding"));
    return;
  }
  const absl::Time deadline = DeadlineOf(*call.context);
  if (deadline <= absl::Now()) {
    FinishSegment(call, absl::DeadlineExceededError(
                            "deadline passed waiting to be decoded"));
    return;
  }
  absl::StatusOr<Admitted> admitted;
  try {
    admitted = Admit(*call.request, call.model, call.response);
  } catch (const std::bad_alloc&) {
    admitted =
        absl::ResourceExhaustedError("out of memory admitting the request");
  } catch (const std::exception& e) {
    admitted = absl::InternalError(absl::StrCat("cannot admit: ", e.what()));
  }
  if (!admitted.ok()) {
    FinishSegment(call, admitted.status());
    return;
  }
  std::unique_ptr<SegmentJob>& job = admitted->job;
  job->deadline = deadline;
  // The context, like request and response, lives until Finish.
  job->cancelled = [context = call.context] { return context->IsCancelled(); };
  job->done = [this, call](const absl::Status& status) {
    FinishSegment(call, status);
  };
  if (!admitted->frames.empty()) {
    if (std::shared_ptr<const DicomSource> source = admitted->dicom_source) {
      job->done = [this, call, source](const absl::Status& status) {
        absl::Status answered = status;
        if (answered.ok()) {
          answered =
              AnswerWithSegmentation(*source, *call.model, *call.response);
        }
        FinishSegment(call, answered);
      };
    }
    StartFrameRequest(std::move(admitted->frames), std::move(job),
                      [this](std::unique_ptr<SegmentJob> frame) {
                        return executor_.Submit(std::move(frame));
                      });
    return;
  }
  if (admitted->tiling.has_value()) {
    // A tiled request holds its image and mask outside the queue's byte
    // bound (only its tiles in flight are queued): their number is bounded.
    if (++tiled_requests_ > options_.max_tiled_requests) {
      --tiled_requests_;
      FinishSegment(
          call, absl::ResourceExhaustedError(absl::StrCat(
                    "the server is segmenting ", options_.max_tiled_requests,
                    " tiled requests already")));
      return;
    }
    job->done = [this, call](const absl::Status& status) {
      --tiled_requests_;
      FinishSegment(call, status);
    };
    StartTiledRequest(std::move(admitted->pixels), *admitted->tiling,
                      std::move(job), [this](std::unique_ptr<SegmentJob> tile) {
                        return executor_.Submit(std::move(tile));
                      });
    return;
  }
  if (absl::Status submitted = executor_.Submit(std::move(job));
      !submitted.ok()) {
    FinishSegment(call, submitted);
  }
}

absl::Status SegmentationService::Authenticate(
    const grpc::CallbackServerContext& context) const {
  if (options_.tokens == nullptr) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  const auto [first, last] = metadata.equal_range("authorization");
  // Absent, or sent twice (which one would count?): refused either way.
  const bool one = first != last && std::next(first) == last;
  return options_.tokens->Check(
      one ? absl::string_view(first->second.data(), first->second.size())
          : absl::string_view());
}

grpc::ServerUnaryReactor* SegmentationService::Segment(
    grpc::CallbackServerContext* context, const SegmentRequest* request,
    SegmentResponse* response) {
  metrics_.in_flight().Increment();
  Call call{context, request,    response, context->DefaultReactor(),
            nullptr, absl::Now()};
  if (absl::Status caller = Authenticate(*context); !caller.ok()) {
    FinishSegment(call, caller);
    return call.reactor;
  }
  if (absl::Status fields = CheckRequestFields(*request); !fields.ok()) {
    FinishSegment(call, fields);
    return call.reactor;
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> found =
      models_.Find(request->model(), request->model_version());
  if (!found.ok()) {
    FinishSegment(call, found.status());
    return call.reactor;
  }
  call.model = *std::move(found);
  // A batch waiting for company waits for this request while it is decoded.
  executor_.ExpectJob();
  absl::Status queued = decode_pool_.TrySubmit(
      RequestImageBytes(*request), [this, call] { AdmitAndQueue(call); });
  if (!queued.ok()) {
    executor_.EndExpectation();
    FinishSegment(call, queued);
  }
  return call.reactor;
}

grpc::ServerUnaryReactor* SegmentationService::GetModelInfo(
    grpc::CallbackServerContext* context, const GetModelInfoRequest* request,
    ModelInfo* response) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status caller = Authenticate(*context); !caller.ok()) {
    metrics_.unknown_model().RecordModelInfo(caller, absl::Now() - received);
    reactor->Finish(ToGrpcStatus(caller));
    return reactor;
  }
  const auto model = models_.Find(request->model(), request->model_version());
  if (model.ok()) {
    *response = DescribeModel(**model, models_.Versions((*model)->name),
                              options_.execution_plan);
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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status caller = Authenticate(*context); !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller));
    return reactor;
  }
  for (const std::string& name : models_.ModelNames()) {
    segmentation::v1::ModelStatus* model = response->add_models();
    model->set_name(name);
    model->set_is_default(name == models_.default_model());
    for (const VersionStatus& version : models_.Versions(name)) {
      *model->add_versions() = version;
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace unet
