#ifndef SERVER_OBSERVABILITY_METRICS_H_
#define SERVER_OBSERVABILITY_METRICS_H_

// The one owner of the server's Prometheus metrics. Every family is built at
// start-up and every per-model child when the model is first registered (at
// load time), so that the request path only touches references.
//
// Names follow the Prometheus conventions (units and _total suffixes):
//   segmentation_requests_total{method,model,code}           counter
//   segmentation_request_duration_seconds{method,model}      histogram
//   segmentation_{queue,preprocess,inference,postprocess}_duration_seconds{model}
//   segmentation_batch_size{model}                           histogram
//   segmentation_queue_depth, segmentation_queue_bytes,
//   segmentation_requests_in_flight gauges
//   segmentation_model_version_info{model,version,format,device} gauge (1)
//   segmentation_model_load_duration_seconds{model}           histogram
//   segmentation_model_load_failures_total{model}             counter
//   segmentation_device_memory_bytes{device}                  gauge (CUDA)
//   process_resident_memory_bytes, process_open_fds           gauges

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {

// gRPC has 17 status codes, 0 (OK) to 16 (UNAUTHENTICATED).
inline constexpr int kStatusCodes = 17;

// The children of one model. Thread-safe: prometheus-cpp's metrics are.
class ModelMetrics {
 public:
  // Counts a finished Segment call and, when it succeeded, observes its
  // stage timings and batch size.
  void RecordSegment(const absl::Status& status, absl::Duration total,
                     const segmentation::v1::Timing& timing);
  // Counts a finished GetModelInfo call and observes its latency.
  void RecordModelInfo(const absl::Status& status, absl::Duration total);

 private:
  friend class ServerMetrics;
  std::array<prometheus::Counter*, kStatusCodes> segment_calls_{};
  std::array<prometheus::Counter*, kStatusCodes> model_info_calls_{};
  prometheus::Histogram* segment_duration_ = nullptr;
  prometheus::Histogram* model_info_duration_ = nullptr;
  prometheus::Histogram* queue_ = nullptr;
  prometheus::Histogram* preprocess_ = nullptr;
  prometheus::Histogram* inference_ = nullptr;
  prometheus::Histogram* postprocess_ = nullptr;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Histogram* load_duration_ = nullptr;
  prometheus::Counter* load_failures_ = nullptr;
};

// Values read when Prometheus scrapes rather than on the request path.
struct ScrapeSources {
  std::function<size_t()> queue_depth;
  std::function<int64_t()> queue_bytes;  // network input waiting
  // (device, bytes in use) per GPU; unset or empty on CPU.
  std::function<std::vector<std::pair<std::string, double>>()> device_memory;
};

class ServerMetrics {
 public:
  ServerMetrics();

  // Returns the children of `model`, building them on first use. Takes a
  // lock: call when a model loads, and keep the reference.
  ModelMetrics& ForModel(const std::string& model);
  // The children for calls that named no loaded model (label "unknown"),
  // so that arbitrary names cannot grow the series without bound.
  ModelMetrics& unknown_model() { return *unknown_; }

  prometheus::Gauge& in_flight() { return *in_flight_; }

  // Marks a version as in service (info gauge 1) and observes its load time.
  void RecordModelLoaded(const std::string& model, int64_t version,
                         const std::string& format, const std::string& device,
                         absl::Duration load_time);
  void RecordModelLoadFailed(const std::string& model);
  // Removes a version's info series once it is out of service.
  void RecordModelUnloaded(const std::string& model, int64_t version,
                           const std::string& format,
                           const std::string& device);

  // Refreshes the scrape-time gauges and returns the text exposition.
  std::string Scrape(const ScrapeSources& sources);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Histogram>& preprocess_duration_;
  prometheus::Family<prometheus::Histogram>& inference_duration_;
  prometheus::Family<prometheus::Histogram>& postprocess_duration_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& version_info_;
  prometheus::Family<prometheus::Histogram>& load_duration_;
  prometheus::Family<prometheus::Counter>& load_failures_;
  prometheus::Family<prometheus::Gauge>& device_memory_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* queue_bytes_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* resident_memory_;
  prometheus::Gauge* open_fds_;

  std::mutex mutex_;  // guards models_ and the version-info children
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;
  ModelMetrics* unknown_;
};

}  // namespace unet

#endif  // SERVER_OBSERVABILITY_METRICS_H_
