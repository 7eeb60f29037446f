#include "server/observability/metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace unet {
namespace {

using prometheus::Histogram;

// Sub-millisecond to tens of seconds.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,   1,      2.5,   5,    10,    30};
  return *buckets;
}

const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* buckets =
      new Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128};
  return *buckets;
}

const Histogram::BucketBoundaries& LoadBuckets() {
  static const auto* buckets =
      new Histogram::BucketBoundaries{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

int CodeIndex(const absl::Status& status) {
  const int code = static_cast<int>(status.code());
  return code >= 0 && code < kStatusCodes
             ? code
             : static_cast<int>(absl::StatusCode::kUnknown);
}

double Seconds(int64_t micros) { return micros / 1e6; }

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * sysconf(_SC_PAGESIZE);
}

double OpenFds() {
  std::error_code error;
  double count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++count;
  }
  return count;
}

}  // namespace

void ModelMetrics::RecordSegment(const absl::Status& status,
                                 absl::Duration total,
                                 const segmentation::v1::Timing& timing) {
  segment_calls_[CodeIndex(status)]->Increment();
  segment_duration_->Observe(absl::ToDoubleSeconds(total));
  if (!status.ok()) return;
  queue_->Observe(Seconds(timing.queue_us()));
  preprocess_->Observe(Seconds(timing.preprocess_us()));
  inference_->Observe(Seconds(timing.inference_us()));
  postprocess_->Observe(Seconds(timing.postprocess_us()));
  batch_size_->Observe(timing.batch_size());
}

void ModelMetrics::RecordModelInfo(const absl::Status& status,
                                   absl::Duration total) {
  model_info_calls_[CodeIndex(status)]->Increment();
  model_info_duration_->Observe(absl::ToDoubleSeconds(total));
}

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("segmentation_requests_total")
                    .Help("Finished RPCs by method, model and gRPC status code")
                    .Register(*registry_)),
      request_duration_(
          prometheus::BuildHistogram()
              .Name("segmentation_request_duration_seconds")
              .Help("Server-side latency of RPCs, from arrival to reply")
              .Register(*registry_)),
      queue_duration_(prometheus::BuildHistogram()
                          .Name("segmentation_queue_duration_seconds")
                          .Help("Time Segment requests waited in the queue")
                          .Register(*registry_)),
      preprocess_duration_(
          prometheus::BuildHistogram()
              .Name("segmentation_preprocess_duration_seconds")
              .Help("Decoding, normalising and padding of Segment requests")
              .Register(*registry_)),
      inference_duration_(
          prometheus::BuildHistogram()
              .Name("segmentation_inference_duration_seconds")
              .Help("Forward pass of the batch a Segment request ran in")
              .Register(*registry_)),
      postprocess_duration_(
          prometheus::BuildHistogram()
              .Name("segmentation_postprocess_duration_seconds")
              .Help("Mask extraction and encoding of Segment requests")
              .Register(*registry_)),
      batch_size_(prometheus::BuildHistogram()
                      .Name("segmentation_batch_size")
                      .Help("Requests per forward pass, per request")
                      .Register(*registry_)),
      version_info_(prometheus::BuildGauge()
                        .Name("segmentation_model_version_info")
                        .Help("1 for each model version in service")
                        .Register(*registry_)),
      load_duration_(prometheus::BuildHistogram()
                         .Name("segmentation_model_load_duration_seconds")
                         .Help("Time to load, check and warm up a version")
                         .Register(*registry_)),
      load_failures_(prometheus::BuildCounter()
                         .Name("segmentation_model_load_failures_total")
                         .Help("Versions that failed to load or check")
                         .Register(*registry_)),
      device_memory_(prometheus::BuildGauge()
                         .Name("segmentation_device_memory_bytes")
                         .Help("Memory in use on each GPU")
                         .Register(*registry_)),
      queue_depth_(&prometheus::BuildGauge()
                        .Name("segmentation_queue_depth")
                        .Help("Segment requests waiting for the engine")
                        .Register(*registry_)
                        .Add({})),
      queue_bytes_(&prometheus::BuildGauge()
                        .Name("segmentation_queue_bytes")
                        .Help("Bytes of network input waiting for the engine "
                              "(bounded by --max_queue_bytes)")
                        .Register(*registry_)
                        .Add({})),
      in_flight_(&prometheus::BuildGauge()
                      .Name("segmentation_requests_in_flight")
                      .Help("RPCs received and not yet answered")
                      .Register(*registry_)
                      .Add({})),
      resident_memory_(&prometheus::BuildGauge()
                            .Name("process_resident_memory_bytes")
                            .Help("Resident memory size in bytes")
                            .Register(*registry_)
                            .Add({})),
      open_fds_(&prometheus::BuildGauge()
                     .Name("process_open_fds")
                     .Help("Number of open file descriptors")
                     .Register(*registry_)
                     .Add({})) {
  unknown_ = &ForModel("unknown");
}

ModelMetrics& ServerMetrics::ForModel(const std::string& model) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<ModelMetrics>& slot = models_[model];
  if (slot != nullptr) return *slot;
  slot = std::make_unique<ModelMetrics>();
  ModelMetrics& m = *slot;
  for (int code = 0; code < kStatusCodes; ++code) {
    const std::string name =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    m.segment_calls_[code] = &requests_.Add(
        {{"method", "Segment"}, {"model", model}, {"code", name}});
    m.model_info_calls_[code] = &requests_.Add(
        {{"method", "GetModelInfo"}, {"model", model}, {"code", name}});
  }
  m.segment_duration_ = &request_duration_.Add(
      {{"method", "Segment"}, {"model", model}}, LatencyBuckets());
  m.model_info_duration_ = &request_duration_.Add(
      {{"method", "GetModelInfo"}, {"model", model}}, LatencyBuckets());
  m.queue_ = &queue_duration_.Add({{"model", model}}, LatencyBuckets());
  m.preprocess_ =
      &preprocess_duration_.Add({{"model", model}}, LatencyBuckets());
  m.inference_ = &inference_duration_.Add({{"model", model}}, LatencyBuckets());
  m.postprocess_ =
      &postprocess_duration_.Add({{"model", model}}, LatencyBuckets());
  m.batch_size_ = &batch_size_.Add({{"model", model}}, BatchBuckets());
  m.load_duration_ = &load_duration_.Add({{"model", model}}, LoadBuckets());
  m.load_failures_ = &load_failures_.Add({{"model", model}});
  return m;
}

void ServerMetrics::RecordModelLoaded(const std::string& model, int64_t version,
                                      const std::string& format,
                                      const std::string& device,
                                      absl::Duration load_time) {
  ForModel(model).load_duration_->Observe(absl::ToDoubleSeconds(load_time));
  std::lock_guard<std::mutex> lock(mutex_);
  version_info_
      .Add({{"model", model},
            {"version", absl::StrCat(version)},
            {"format", format},
            {"device", device}})
      .Set(1);
}

void ServerMetrics::RecordModelUnloaded(const std::string& model,
                                        int64_t version,
                                        const std::string& format,
                                        const std::string& device) {
  std::lock_guard<std::mutex> lock(mutex_);
  version_info_.Remove(&version_info_.Add({{"model", model},
                                           {"version", absl::StrCat(version)},
                                           {"format", format},
                                           {"device", device}}));
}

void ServerMetrics::RecordModelLoadFailed(const std::string& model) {
  ForModel(model).load_failures_->Increment();
}

std::string ServerMetrics::Scrape(const ScrapeSources& sources) {
  if (sources.queue_depth) queue_depth_->Set(sources.queue_depth());
  if (sources.queue_bytes) {
    queue_bytes_->Set(static_cast<double>(sources.queue_bytes()));
  }
  resident_memory_->Set(ResidentBytes());
  open_fds_->Set(OpenFds());
  if (sources.device_memory) {
    for (const auto& [device, bytes] : sources.device_memory()) {
      device_memory_.Add({{"device", device}}).Set(bytes);
    }
  }
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, registry_->Collect());
  return text.str();
}

}  // namespace unet
