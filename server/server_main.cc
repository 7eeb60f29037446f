// segmentation_server: serves U-Net segmentation over gRPC.

#include <algorithm>
#include <iostream>
#include <limits>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/command_line.h"
#include "common/cpu_threads.h"
#include "common/log.h"
#include "common/machine_memory.h"
#include "server/imaging/opencv_limits.h"
#include "server/security/bearer_tokens.h"
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
ABSL_FLAG(int, instances, 0,
          "model instances (workers) per device (0: 1 with a GPU; on CPUs "
          "alone, with --cpu_threads and --max_batch_size also 0, the "
          "fastest plan measured at start-up)");
ABSL_FLAG(double, plan_seconds, 12,
          "on CPUs, time for measuring the candidate execution plans");
ABSL_FLAG(std::string, precision, "fp32", "fp32, fp16 (CUDA only) or bf16");
ABSL_FLAG(bool, channels_last, false,
          "run convolutions in channels-last layout (default: on with CPUs "
          "alone, where it pays with oneDNN; off with a GPU, where it pays "
          "with fp16 tensor cores)");
ABSL_FLAG(int, cpu_threads, 0,
          "LibTorch intra-op threads per CPU worker (0: planned on CPUs, "
          "else the usable CPUs divided among the CPU workers)");
ABSL_FLAG(int, finish_threads, -1,
          "threads that crop and PNG-encode masks while the workers run the "
          "next batch; -1: with a GPU the usable CPUs up to 8, else 0");
ABSL_FLAG(int, warmup_image_size, 512,
          "on CUDA, every batch size is run once at the padded size of an "
          "image this large before the server turns SERVING");
ABSL_FLAG(int64_t, max_pixels, int64_t{4096} * 4096,
          "largest image accepted, in pixels");
ABSL_FLAG(int64_t, max_side, 65536,
          "longest image side accepted, in pixels (at most 2097152)");
ABSL_FLAG(int64_t, max_input_pixels, 0,
          "network input pixels of one pass (the image mirrored out to a "
          "valid size); images that pad to more are refused (0: what a square "
          "image of --max_pixels pads to)");
ABSL_FLAG(int, tile_size, 0,
          "network input side of a tile for OVERLAP_TILE requests and images "
          "too large for one pass, rounded up to a valid size (0: 572 on "
          "CPUs, 1020 with a GPU)");
ABSL_FLAG(int64_t, tile_above_pixels, 0,
          "network input pixels above which an image is tiled (same result, "
          "the memory of a few tiles); 0: on CPUs what a 640 x 640 image "
          "pads to, with a GPU only above --max_input_pixels");
ABSL_FLAG(int, max_tiled_requests, 8,
          "tiled or augmented requests segmented at once (each holds its "
          "image and mask); more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, tiles_in_flight, 0,
          "tiles of one request queued or running at once (0: twice what "
          "the workers' batches hold, at least 2)");
ABSL_FLAG(bool, test_time_augmentation, false,
          "average every request's soft-max over the 8 flips and quarter "
          "turns of its image (8 passes; requests may also ask for it)");
ABSL_FLAG(int, max_queue_size, 256,
          "requests that may wait for the engine; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(
    int64_t, max_queue_bytes, 0,
    "bytes of network input that may wait for the engine; more get "
    "RESOURCE_EXHAUSTED (0: 1/16 of the usable memory, 256 MiB to 1 GiB)");
ABSL_FLAG(int64_t, max_batch_pixels, 0,
          "network input pixels per forward pass (0: --max_input_pixels)");
ABSL_FLAG(int, routine_aging_ms, 1000,
          "a ROUTINE request that has waited this long competes with URGENT "
          "ones as if it had arrived this much later");
ABSL_FLAG(int, decode_threads, 0,
          "threads that decode and prepare requests (0: the usable CPUs, at "
          "most 4)");
ABSL_FLAG(int, max_decode_queue, 64,
          "requests that may wait to be decoded; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, grpc_memory_bytes, 0,
          "memory gRPC may use for calls being received (0: 1/16 of the "
          "usable memory, 256 MiB to 1 GiB)");
ABSL_FLAG(int, max_batch_size, 0,
          "most requests per forward pass (0: 8 with a GPU, planned on "
          "CPUs)");
ABSL_FLAG(int, max_queue_delay_us, 2000,
          "how long the first request of a batch may wait for company");
ABSL_FLAG(int, metrics_port, 9090,
          "HTTP port for /metrics, /healthz and /readyz (0: any free port)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0",
          "address the HTTP endpoints listen on");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: the gRPC port speaks TLS (1.2 or later); "
          "read again when replaced, see --tls_reload_interval_s");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: mutual TLS, clients must present a certificate it "
          "signed");
ABSL_FLAG(int, tls_reload_interval_s, 10,
          "how often the TLS files are read again (replace them atomically: "
          "docs/deployment.md)");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "file of bearer tokens, one per line: every Segment, GetModelInfo "
          "and ListModels call must send \"authorization: Bearer TOKEN\" "
          "(health checks need none); read again when it changes");
ABSL_FLAG(int, drain_timeout_s, 30,
          "seconds to finish accepted requests after SIGTERM");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves U-Net segmentation over gRPC.\n"
      "usage: segmentation_server [--port=50051] [--model_root=DIR] ...");
  unet::TuneAllocator();
  absl::ParseCommandLine(argc, argv);
  unet::ServerOptions options;
  options.service.decode.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  options.service.decode.max_side = absl::GetFlag(FLAGS_max_side);
  if (options.service.decode.max_pixels < 1 ||
      options.service.decode.max_side < 1 ||
      options.service.decode.max_side > (int64_t{1} << 21)) {
    std::cerr << "segmentation_server: --max_pixels must be positive and "
                 "--max_side 1 to 2097152\n";
    return 2;
  }
  // OpenCV must refuse oversized images itself; it reads its limits only at
  // start-up, so this may start the program again with them set.
  if (const absl::Status limits =
          unet::EnforceOpenCvLimits(options.service.decode, argv);
      !limits.ok()) {
    std::cerr << "segmentation_server: " << limits.message() << "\n";
    return 1;
  }
  // From here on, what libraries print goes through the escaped log.
  unet::CaptureLibraryOutput();
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
  // Any of the three given fixes the plan; the others take their rules.
  options.plan_cpu_execution = options.instances_per_device == 0 &&
                               options.cpu_threads == 0 &&
                               absl::GetFlag(FLAGS_max_batch_size) == 0;
  if (options.instances_per_device == 0) options.instances_per_device = 1;
  options.planner.budget = absl::Seconds(absl::GetFlag(FLAGS_plan_seconds));
  options.finish_threads = absl::GetFlag(FLAGS_finish_threads);
  options.engine.precision = absl::GetFlag(FLAGS_precision);
  options.engine.channels_last = absl::GetFlag(FLAGS_channels_last);
  options.channels_last_by_device =
      !unet::FlagGivenOnCommandLine(argc, argv, "channels_last");
  options.engine.warmup_image_side = absl::GetFlag(FLAGS_warmup_image_size);
  options.service.max_input_pixels = absl::GetFlag(FLAGS_max_input_pixels);
  options.service.tile_size = absl::GetFlag(FLAGS_tile_size);
  options.service.tiles_in_flight = absl::GetFlag(FLAGS_tiles_in_flight);
  options.service.tile_above_pixels = absl::GetFlag(FLAGS_tile_above_pixels);
  options.service.max_tiled_requests = absl::GetFlag(FLAGS_max_tiled_requests);
  options.service.test_time_augmentation =
      absl::GetFlag(FLAGS_test_time_augmentation);
  // Room for the largest image accepted, as raw float32 pixels.
  options.max_receive_message_bytes = static_cast<int>(std::min<int64_t>(
      std::numeric_limits<int>::max(),
      std::max<int64_t>(options.max_receive_message_bytes,
                        4 * options.service.decode.max_pixels + (1 << 20))));
  const int decode_threads = absl::GetFlag(FLAGS_decode_threads);
  options.service.decode_pool.threads =
      decode_threads > 0 ? decode_threads : std::min(unet::UsableCpus(), 4);
  options.service.decode_pool.max_queued =
      absl::GetFlag(FLAGS_max_decode_queue);
  options.batcher.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  options.batcher.max_queue_bytes = absl::GetFlag(FLAGS_max_queue_bytes);
  options.batcher.max_batch_pixels = absl::GetFlag(FLAGS_max_batch_pixels);
  options.batcher.routine_aging =
      absl::Milliseconds(absl::GetFlag(FLAGS_routine_aging_ms));
  options.grpc_memory_bytes = absl::GetFlag(FLAGS_grpc_memory_bytes);
  options.batcher.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.batcher.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  options.drain_timeout_s = absl::GetFlag(FLAGS_drain_timeout_s);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (absl::GetFlag(FLAGS_max_batch_size) < 0 ||
      absl::GetFlag(FLAGS_max_queue_size) < 1 ||
      absl::GetFlag(FLAGS_instances) < 0 ||
      absl::GetFlag(FLAGS_cpu_threads) < 0 ||
      !(absl::GetFlag(FLAGS_plan_seconds) >= 0) ||
      options.service.decode_pool.max_queued < 1 ||
      options.service.max_input_pixels < 0 || options.service.tile_size < 0 ||
      options.service.tiles_in_flight < 0 ||
      options.service.tile_above_pixels < 0 ||
      options.service.max_tiled_requests < 1 ||
      options.batcher.max_queue_bytes < 0 ||
      options.batcher.max_batch_pixels < 0 || options.grpc_memory_bytes < 0 ||
      decode_threads < 0 || absl::GetFlag(FLAGS_routine_aging_ms) < 0) {
    std::cerr << "segmentation_server: --max_queue_size and "
                 "--max_decode_queue must be positive; --instances, "
                 "--cpu_threads, --plan_seconds, --max_batch_size, "
                 "--decode_threads, --routine_aging_ms, --tile_size, "
                 "--tiles_in_flight and the byte and pixel bounds not "
                 "negative\n";
    return 2;
  }
  options.tls.cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls.reload_interval =
      absl::Seconds(std::max(1, absl::GetFlag(FLAGS_tls_reload_interval_s)));
  if (const std::string tokens = absl::GetFlag(FLAGS_auth_tokens_file);
      !tokens.empty()) {
    auto loaded = unet::BearerTokens::Load(tokens);
    if (!loaded.ok()) {
      std::cerr << "segmentation_server: --auth_tokens_file: "
                << loaded.status().message() << "\n";
      return 2;
    }
    options.service.tokens = *std::move(loaded);
  }
  const absl::Status status = unet::RunServer(options);
  if (!status.ok()) {
    std::cerr << "segmentation_server: " << status << "\n";
    return 1;
  }
  return 0;
}
