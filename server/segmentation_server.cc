#include "server/segmentation_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/http_endpoints.h"
#include "server/metrics.h"
#include "server/model_manager.h"
#include "server/torch_engine.h"

namespace unet {
namespace {

// Blocks SIGINT and SIGTERM in this thread and every thread it starts, so
// that WaitForStopSignal receives them instead of the default handler.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStopSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal;
}

}  // namespace

absl::Status RunServer(const ServerOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  ASSIGN_OR_RETURN(const std::string device, ResolveDevice(options.device));
  ServerMetrics metrics;
  ModelManager models(
      options.model_root, options.default_model,
      [device](const std::filesystem::path& dir, const ModelConfig& config) {
        return LoadTorchEngine(dir, config, device);
      },
      metrics);
  SegmentExecutor executor(options.executor);
  std::atomic<bool> ready{false};
  ScrapeSources sources;
  sources.queue_depth = [&executor] { return executor.queue_depth(); };
  sources.device_memory = DeviceMemoryInUse;
  ASSIGN_OR_RETURN(
      const std::unique_ptr<HttpEndpoints> http,
      HttpEndpoints::Start(options.metrics_address, options.metrics_port,
                           metrics, std::move(sources), ready));

  SegmentationService service(models, executor, metrics, options.service);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat(options.address, ":", options.port),
                           grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, ":", options.port));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  const auto set_serving = [&](bool serving) {
    health->SetServingStatus(
        segmentation::v1::Segmentation::service_full_name(), serving);
    health->SetServingStatus(serving);
    ready = serving;
  };
  set_serving(false);
  LogEvent("listening", {{"port", absl::StrCat(port)},
                         {"metrics_port", absl::StrCat(http->port())},
                         {"device", device}});

  if (absl::Status loaded = models.LoadAll(); !loaded.ok()) {
    server->Shutdown();
    return loaded;
  }
  set_serving(true);
  LogEvent("serving", {{"default_model", models.default_model()}});

  const int signal = WaitForStopSignal(stop_signals);
  LogEvent("draining", {{"signal", absl::StrCat(signal)}});
  set_serving(false);
  // New calls are refused from here; Shutdown waits (up to the drain
  // timeout) for the calls already accepted, which the executor completes.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(options.drain_timeout_s));
  executor.Stop();
  LogEvent("stopped", {});
  return absl::OkStatus();
}

}  // namespace unet
