#ifndef SERVER_SEGMENTATION_SERVER_H_
#define SERVER_SEGMENTATION_SERVER_H_

// Assembles the server: metrics and HTTP endpoints, model manager, batcher
// and executor, gRPC service, health and reflection.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/api/health_service.h"
#include "server/api/segmentation_service.h"
#include "server/engine/cpu_planner.h"
#include "server/engine/torch_engine.h"
#include "server/lifecycle/model_manager.h"
#include "server/lifecycle/model_watcher.h"
#include "server/observability/http_endpoints.h"
#include "server/observability/metrics.h"
#include "server/scheduling/segment_executor.h"
#include "server/security/server_credentials.h"

namespace unet {

struct ServerOptions {
  std::string address = "0.0.0.0";
  int port = 50051;  // 0: any free port
  std::string model_root;
  std::string default_model;    // empty: the root's only model
  VersionPins pinned_versions;  // models not named serve their newest
  // The root is watched with inotify and also polled at this interval
  // (negative: no polling).
  absl::Duration poll_interval = absl::Seconds(10);
  // Comma-separated devices; empty: cuda:0 when available, else cpu.
  std::string devices;
  int instances_per_device = 1;  // model instances, each with a worker
  int cpu_threads = 0;  // intra-op threads per CPU worker; 0: DefaultCpuThreads
  // On CPUs alone: time candidate plans (cpu_planner.h) on the default model
  // before serving and replace instances_per_device, cpu_threads and
  // batcher.max_batch_size with the fastest; ignored with a GPU.
  // A measured plan also shares the CPUs among the busy workers
  // (ExecutorOptions::shared_cpus).
  bool plan_cpu_execution = false;
  PlannerOptions planner;
  int shared_cpus = 0;  // ExecutorOptions::shared_cpus; set by the plan
  // Threads that crop and encode masks beside the workers (ExecutorOptions);
  // -1: with a GPU the usable CPUs up to 8, on CPUs alone 0 (the cores are
  // the network's).
  int finish_threads = -1;
  EngineOptions engine;  // device is filled per instance
  // Replaces engine.channels_last: on with CPUs alone, off with a GPU. On
  // CPUs channels-last made oneDNN's convolutions 1.5-3x faster
  // (docs/performance.md); on a GPU it pays only with fp16 tensor cores.
  bool channels_last_by_device = false;
  ServiceOptions service;
  // max_batch_size 0: 8 with a GPU, 1 on CPU; max_queue_bytes 0: derived
  // from the usable memory; max_batch_pixels 0: service.max_input_pixels.
  BatcherOptions batcher;
  // Memory gRPC may use for calls being received (ResourceQuota): the
  // transport stops reading when it is spent. 0: derived from the usable
  // memory.
  int64_t grpc_memory_bytes = 0;
  // At least this; server_main raises it to fit the largest image accepted.
  int max_receive_message_bytes = 64 << 20;
  int drain_timeout_s = 30;  // for accepted requests at shutdown
  // The gRPC port's TLS (empty cert: plaintext); bearer tokens are
  // service.tokens.
  TlsFiles tls;
  // HTTP: /metrics, /healthz, /readyz (port 0: any free port).
  std::string metrics_address = "0.0.0.0";
  int metrics_port = 9090;
};

class SegmentationServer {
 public:
  // Measures the CPU plan when asked (plan_cpu_execution; the ports are
  // still closed then), starts listening (health NOT_SERVING), loads and
  // warms up the models, and turns SERVING. Fails when no default model
  // loads or a port is taken.
  static absl::StatusOr<std::unique_ptr<SegmentationServer>> Start(
      const ServerOptions& options);
  ~SegmentationServer();

  // Turns NOT_SERVING, stops accepting calls, finishes the accepted ones
  // (within the drain timeout) and stops the workers.
  void Drain();

  int port() const { return port_; }
  int metrics_port() const { return http_->port(); }
  const ModelManager& models() const { return models_; }
  bool channels_last() const { return options_.engine.channels_last; }
  // The tile side requests are cut with (ServiceOptions::tile_size).
  int tile_size() const { return options_.service.tile_size; }
  // How the server runs its passes (measured or from the flags).
  const segmentation::v1::ExecutionPlan& execution_plan() const {
    return options_.service.execution_plan;
  }

 private:
  SegmentationServer(const ServerOptions& options,
                     std::vector<std::string> devices);
  void SetServing(bool serving);

  const ServerOptions options_;
  const std::vector<std::string> slot_devices_;  // device of each instance
  ServerMetrics metrics_;
  ModelManager models_;
  SegmentExecutor executor_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<HttpEndpoints> http_;
  std::unique_ptr<SegmentationService> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<ModelWatcher> watcher_;
  int port_ = 0;
  bool drained_ = false;
};

// Serves until SIGTERM or SIGINT, then drains and returns OK.
absl::Status RunServer(const ServerOptions& options);

}  // namespace unet

#endif  // SERVER_SEGMENTATION_SERVER_H_
