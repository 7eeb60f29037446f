// segmentation_server: serves U-Net segmentation over gRPC.

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/segmentation_server.h"

ABSL_FLAG(int, port, 50051, "gRPC port (0: any free port)");
ABSL_FLAG(std::string, address, "0.0.0.0", "address to listen on");
ABSL_FLAG(
    std::string, model_root, UNET_DEFAULT_MODEL_ROOT,
    "model repository: MODEL_ROOT/<name>/<version>/{model.pt,model.json}");
ABSL_FLAG(std::string, default_model, "",
          "model for requests that name none (empty: the root's only model)");
ABSL_FLAG(std::string, model_versions, "",
          "pinned versions, e.g. \"unet:3,5;other:1\"; models not named serve "
          "their newest loadable version");
ABSL_FLAG(int, poll_interval_s, 10,
          "also look for new versions this often, besides inotify (-1: never)");
ABSL_FLAG(std::string, device, "",
          "cpu, cuda, cuda:N, or a comma-separated list such as "
          "cuda:0,cuda:1 (empty: cuda:0 when available, else cpu)");
ABSL_FLAG(int, instances, 1, "model instances (workers) per device");
ABSL_FLAG(std::string, precision, "fp32", "fp32, fp16 (CUDA only) or bf16");
ABSL_FLAG(bool, channels_last, false,
          "run convolutions in channels-last layout (pays on tensor cores)");
ABSL_FLAG(int, cpu_threads, 0,
          "LibTorch intra-op threads per CPU worker (0: the usable CPUs "
          "divided among the CPU workers)");
ABSL_FLAG(int, warmup_image_size, 512,
          "on CUDA, every batch size is run once at the padded size of an "
          "image this large before the server turns SERVING");
ABSL_FLAG(int64_t, max_pixels, int64_t{4096} * 4096,
          "largest image accepted, in pixels");
ABSL_FLAG(int, max_queue_size, 256,
          "requests that may wait for the engine; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_batch_size, 0,
          "most requests per forward pass (0: 8 with a GPU, 1 on CPU)");
ABSL_FLAG(int, max_queue_delay_us, 2000,
          "how long the first request of a batch may wait for company");
ABSL_FLAG(int, metrics_port, 9090,
          "HTTP port for /metrics, /healthz and /readyz (0: any free port)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0",
          "address the HTTP endpoints listen on");
ABSL_FLAG(int, drain_timeout_s, 30,
          "seconds to finish accepted requests after SIGTERM");

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
  options.devices = absl::GetFlag(FLAGS_device);
  options.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_interval_s));
  const auto pins = unet::ParseVersionPins(absl::GetFlag(FLAGS_model_versions));
  if (!pins.ok()) {
    std::cerr << "segmentation_server: --model_versions: "
              << pins.status().message() << "\n";
    return 2;
  }
  options.pinned_versions = *pins;
  options.instances_per_device = absl::GetFlag(FLAGS_instances);
  options.cpu_threads = absl::GetFlag(FLAGS_cpu_threads);
  options.engine.precision = absl::GetFlag(FLAGS_precision);
  options.engine.channels_last = absl::GetFlag(FLAGS_channels_last);
  options.engine.warmup_image_side = absl::GetFlag(FLAGS_warmup_image_size);
  options.service.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  options.batcher.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  options.batcher.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.batcher.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  options.drain_timeout_s = absl::GetFlag(FLAGS_drain_timeout_s);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (absl::GetFlag(FLAGS_max_batch_size) < 0 ||
      absl::GetFlag(FLAGS_max_queue_size) < 1 ||
      options.instances_per_device < 1 || options.service.max_pixels < 1) {
    std::cerr << "segmentation_server: --max_queue_size, --instances and "
                 "--max_pixels must be positive, --max_batch_size not "
                 "negative\n";
    return 2;
  }
  const absl::Status status = unet::RunServer(options);
  if (!status.ok()) {
    std::cerr << "segmentation_server: " << status << "\n";
    return 1;
  }
  return 0;
}
