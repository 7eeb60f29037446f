// segmentation_server: serves U-Net segmentation over gRPC.

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "server/segmentation_server.h"

ABSL_FLAG(int, port, 50051, "gRPC port (0: any free port)");
ABSL_FLAG(std::string, address, "0.0.0.0", "address to listen on");
ABSL_FLAG(
    std::string, model_root, UNET_DEFAULT_MODEL_ROOT,
    "model repository: MODEL_ROOT/<name>/<version>/{model.pt,model.json}");
ABSL_FLAG(std::string, default_model, "",
          "model for requests that name none (empty: the root's only model)");
ABSL_FLAG(std::string, device, "",
          "cpu, cuda or cuda:N (empty: cuda when available, else cpu)");
ABSL_FLAG(int64_t, max_pixels, int64_t{4096} * 4096,
          "largest image accepted, in pixels");
ABSL_FLAG(int, max_queue_size, 256,
          "requests that may wait for the engine; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, metrics_port, 9090,
          "HTTP port for /metrics, /healthz and /readyz (0: any free port)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0",
          "address the HTTP endpoints listen on");
ABSL_FLAG(int, drain_timeout_s, 30,
          "seconds to finish in-flight requests after SIGTERM");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves U-Net segmentation over gRPC.\n"
      "usage: segmentation_server [--port=50051] [--model_root=DIR] ...");
  absl::ParseCommandLine(argc, argv);
  unet::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.port = absl::GetFlag(FLAGS_port);
  options.model_root = absl::GetFlag(FLAGS_model_root);
  options.default_model = absl::GetFlag(FLAGS_default_model);
  options.device = absl::GetFlag(FLAGS_device);
  options.service.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  options.executor.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  options.drain_timeout_s = absl::GetFlag(FLAGS_drain_timeout_s);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  const absl::Status status = unet::RunServer(options);
  if (!status.ok()) {
    std::cerr << "segmentation_server: " << status << "\n";
    return 1;
  }
  return 0;
}
