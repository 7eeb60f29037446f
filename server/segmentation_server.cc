#include "server/segmentation_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
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
  ModelManager models(
      options.model_root, options.default_model,
      [device](const std::filesystem::path& dir, const ModelConfig& config) {
        return LoadTorchEngine(dir, config, device);
      });
  RETURN_IF_ERROR(models.LoadAll());

  SegmentExecutor executor(options.executor);
  SegmentationService service(models, executor, options.service);
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
  // Models are loaded and warmed up by LoadAll: ready to serve.
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(segmentation::v1::Segmentation::service_full_name(),
                           true);
  health->SetServingStatus(true);
  LogEvent("serving", {{"port", absl::StrCat(port)},
                       {"device", device},
                       {"default_model", models.default_model()}});

  const int signal = WaitForStopSignal(stop_signals);
  LogEvent("stopping", {{"signal", absl::StrCat(signal)}});
  health->SetServingStatus(false);
  // Shutdown waits for in-flight RPCs, which the executor completes.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(options.drain_timeout_s));
  executor.Stop();
  LogEvent("stopped", {});
  return absl::OkStatus();
}

}  // namespace unet
