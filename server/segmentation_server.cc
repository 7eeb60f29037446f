#include "server/segmentation_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/cpu_threads.h"
#include "common/log.h"
#include "common/machine_memory.h"
#include "common/status_macros.h"
#include "model/unet_geometry.h"

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

// The share of the usable memory each bound takes by default; together with
// the decode threads' working images they stay within a quarter of it.
constexpr int64_t kMiB = int64_t{1} << 20;

int64_t Clamp(int64_t value, int64_t low, int64_t high) {
  return std::min(std::max(value, low), high);
}

// Fills the bounds left at 0 from the machine's usable memory.
void DeriveMemoryBounds(ServerOptions& options) {
  const int64_t usable = UsableMemoryBytes();
  if (options.batcher.max_queue_bytes == 0) {
    options.batcher.max_queue_bytes =
        Clamp(usable / 16, 256 * kMiB, 1024 * kMiB);
  }
  if (options.grpc_memory_bytes == 0) {
    options.grpc_memory_bytes = Clamp(usable / 16, 256 * kMiB, 1024 * kMiB);
  }
}

// Loads the default model's served version once per candidate instance
// (as the server would), times the candidate plans on it at the padded size
// of a warm-up image, and writes the fastest into `options`.
absl::Status PlanCpuExecution(ServerOptions& options) {
  const int cpus = UsableCpus();
  const std::vector<CpuPlan> candidates = CpuPlanCandidates(cpus, 2);
  int most_instances = 1;
  for (const CpuPlan& plan : candidates) {
    most_instances = std::max(most_instances, plan.instances);
  }
  ServerMetrics scratch_metrics;
  ModelManager probe(
      options.model_root, options.default_model,
      [&](const std::filesystem::path& dir, const ModelConfig& config, int) {
        EngineOptions engine = options.engine;
        engine.device = "cpu";
        return LoadTorchEngine(dir, config, engine);
      },
      most_instances, scratch_metrics, options.pinned_versions);
  RETURN_IF_ERROR(probe.LoadAll());
  ASSIGN_OR_RETURN(const std::shared_ptr<const LoadedModel> model,
                   probe.Find("", 0));
  const auto& arch = model->config.architecture();
  const int levels = arch.channels_size();
  const int64_t side = NextValidInputSide(
      options.engine.warmup_image_side + 2 * ContextMargin(levels), levels);
  // Deterministic noise rather than a flat image, so that the passes timed
  // compute image-like activations.
  FloatTensor sample{{1, arch.input_channels(), side, side}, {}};
  sample.values.resize(arch.input_channels() * side * side);
  uint32_t state = 1;
  for (float& value : sample.values) {
    state = state * 1664525u + 1013904223u;  // Numerical Recipes' LCG
    value = static_cast<float>(state >> 8) / float(1 << 24) * 2.0f - 1.0f;
  }
  LogEvent("planning", {{"model", model->name},
                        {"version", absl::StrCat(model->version)},
                        {"input", absl::StrCat(side, "x", side)},
                        {"candidates", absl::StrCat(candidates.size())}});
  // The workers will share the CPUs (shared_cpus): time plans so.
  PlannerOptions planner = options.planner;
  planner.lone_request_uses_all_cpus = true;
  const absl::StatusOr<CpuPlanChoice> choice =
      ChooseCpuPlan(model->engines, sample, candidates, SetCpuThreads, planner);
  if (!choice.ok()) {
    // The server still serves, with the plain rule: one instance.
    LogEvent("planning_failed", {{"message", choice.status().message()}});
    options.service.execution_plan.set_chosen_by("fallback");
    return absl::OkStatus();
  }
  std::vector<std::string> tried;
  for (const PlanMeasurement& m : choice->measured) {
    tried.push_back(absl::StrFormat("%dx%d/b%d:%.2f/s:%.0fms", m.plan.instances,
                                    m.plan.threads, m.plan.max_batch_size,
                                    m.images_per_second, m.latency_ms));
  }
  const CpuPlan& plan = choice->plan;
  LogEvent("cpu_plan",
           {{"instances", absl::StrCat(plan.instances)},
            {"threads", absl::StrCat(plan.threads)},
            {"max_batch_size", absl::StrCat(plan.max_batch_size)},
            {"measured", absl::StrJoin(tried, " ")},
            {"planning_ms",
             absl::StrCat(absl::ToInt64Milliseconds(choice->spent))}});
  options.instances_per_device = plan.instances;
  options.cpu_threads = plan.threads;
  options.shared_cpus = plan.instances * plan.threads;
  options.batcher.max_batch_size = plan.max_batch_size;
  auto& reported = options.service.execution_plan;
  reported.set_chosen_by("measured");
  reported.set_measured_images_per_second(choice->chosen.images_per_second);
  reported.set_measured_latency_ms(choice->chosen.latency_ms);
  return absl::OkStatus();
}

int WaitForStopSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal;
}

}  // namespace

SegmentationServer::SegmentationServer(const ServerOptions& options,
                                       std::vector<std::string> slot_devices)
    : options_(options),
      slot_devices_(std::move(slot_devices)),
      models_(
          options.model_root, options.default_model,
          [this](const std::filesystem::path& dir, const ModelConfig& config,
                 int slot) {
            EngineOptions engine = options_.engine;
            engine.device = slot_devices_[slot];
            engine.max_batch_size = options_.batcher.max_batch_size;
            return LoadTorchEngine(dir, config, engine);
          },
          static_cast<int>(slot_devices_.size()), metrics_,
          options.pinned_versions),
      executor_({options.batcher, static_cast<int>(slot_devices_.size()),
                 options.finish_threads, options.shared_cpus, SetCpuThreads}) {}

absl::StatusOr<std::unique_ptr<SegmentationServer>> SegmentationServer::Start(
    const ServerOptions& requested) {
  ASSIGN_OR_RETURN(const std::vector<std::string> devices,
                   ResolveDevices(requested.devices));
  ServerOptions options = requested;
  const bool cuda =
      std::any_of(devices.begin(), devices.end(),
                  [](const std::string& d) { return d != "cpu"; });
  if (options.channels_last_by_device) options.engine.channels_last = !cuda;
  options.service.execution_plan.set_chosen_by("flags");
  if (options.plan_cpu_execution && !cuda) {
    RETURN_IF_ERROR(PlanCpuExecution(options));
  }
  if (options.batcher.max_batch_size == 0) {
    // On the CPUs measured (docs/performance.md) a larger batch lowers the
    // U-Net's throughput; on GPUs it raises it.
    options.batcher.max_batch_size = cuda ? 8 : 1;
  }
  if (options.finish_threads < 0) {
    options.finish_threads = cuda ? std::min(UsableCpus(), 8) : 0;
  }
  std::vector<std::string> slot_devices;
  for (const std::string& device : devices) {
    RETURN_IF_ERROR(CheckPrecision(options.engine.precision, device));
    for (int i = 0; i < options.instances_per_device; ++i) {
      slot_devices.push_back(device);
    }
  }
  if (slot_devices.empty()) {
    return absl::InvalidArgumentError("instances_per_device must be >= 1");
  }
  if (options.cpu_threads == 0) {
    options.cpu_threads = DefaultCpuThreads(
        UsableCpus(), std::count(devices.begin(), devices.end(), "cpu") *
                          options.instances_per_device);
  }
  SetCpuThreads(options.cpu_threads);
  auto& reported = options.service.execution_plan;
  reported.set_instances_per_device(options.instances_per_device);
  reported.set_threads_per_instance(options.cpu_threads);
  reported.set_max_batch_size(options.batcher.max_batch_size);
  reported.set_shared_cpus(options.shared_cpus);
  DeriveMemoryBounds(options);
  if (options.service.max_input_pixels == 0) {
    options.service.max_input_pixels =
        DefaultMaxInputPixels(options.service.decode.max_pixels);
  }
  if (options.batcher.max_batch_pixels == 0) {
    options.batcher.max_batch_pixels = options.service.max_input_pixels;
  }
  if (options.service.tile_size == 0) {
    // On a GPU recomputing the overlap costs more than launching more
    // tiles; on CPUs the paper's tile keeps a pass's memory small.
    options.service.tile_size = cuda ? 1020 : 572;
  }
  if (options.service.tile_above_pixels == 0 && !cuda) {
    // On CPUs a whole pass of a larger image runs fewer pixels a second
    // than tiles, which also keep one shape warm; measured against tiles of
    // 572: 640 x 640 whole was faster, 768 x 768 and up tiled were, 3.7x
    // at 1024 x 1024 (docs/reliability.md).
    options.service.tile_above_pixels = DefaultMaxInputPixels(640 * 640);
  }
  if (options.service.tiles_in_flight == 0) {
    // Enough to fill every worker's next batch and the one after.
    options.service.tiles_in_flight =
        std::max<int>(2, 2 * options.batcher.max_batch_size *
                             static_cast<int>(slot_devices.size()));
  }
  // The service announces each request to the batcher before decoding it.
  options.batcher.wait_only_for_expected = true;
  std::unique_ptr<SegmentationServer> server(
      new SegmentationServer(options, std::move(slot_devices)));

  ScrapeSources sources;
  sources.queue_depth = [s = server.get()] {
    return s->executor_.queue_depth();
  };
  sources.queue_bytes = [s = server.get()] {
    return s->executor_.queue_bytes();
  };
  sources.device_memory = DeviceMemoryInUse;
  ASSIGN_OR_RETURN(server->http_,
                   HttpEndpoints::Start(options.metrics_address,
                                        options.metrics_port, server->metrics_,
                                        std::move(sources), server->ready_));

  ASSIGN_OR_RETURN(const std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeServerCredentials(options.tls));
  server->service_ = std::make_unique<SegmentationService>(
      server->models_, server->executor_, server->metrics_, options.service);
  server->health_ = std::make_unique<HealthService>(std::vector<std::string>{
      segmentation::v1::Segmentation::service_full_name()});
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.address, ":", options.port),
                           credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  grpc::ResourceQuota quota("segmentation_server");
  quota.Resize(static_cast<size_t>(options.grpc_memory_bytes));
  builder.SetResourceQuota(quota);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->health_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, ":", options.port));
  }
  LogEvent(
      "listening",
      {{"port", absl::StrCat(server->port_)},
       {"max_batch_size", absl::StrCat(options.batcher.max_batch_size)},
       {"max_queue_mib", absl::StrCat(options.batcher.max_queue_bytes >> 20)},
       {"grpc_memory_mib", absl::StrCat(options.grpc_memory_bytes >> 20)},
       {"metrics_port", absl::StrCat(server->metrics_port())},
       {"transport", options.tls.cert.empty()        ? "plaintext"
                     : options.tls.client_ca.empty() ? "tls"
                                                     : "mutual_tls"},
       {"bearer_tokens",
        options.service.tokens != nullptr ? "required" : "off"},
       {"devices", absl::StrJoin(server->slot_devices_, ",")}});

  RETURN_IF_ERROR(server->models_.LoadAll());
  server->watcher_ = std::make_unique<ModelWatcher>(
      options.model_root, options.poll_interval,
      [s = server.get()] { s->models_.Reconcile(); });
  server->SetServing(true);
  LogEvent("serving", {{"default_model", server->models_.default_model()}});
  return server;
}

SegmentationServer::~SegmentationServer() { Drain(); }

void SegmentationServer::SetServing(bool serving) {
  health_->SetServing(serving);
  ready_ = serving;
}

void SegmentationServer::Drain() {
  if (drained_) return;
  drained_ = true;
  watcher_.reset();  // no reloads while draining
  if (grpc_server_ != nullptr) {
    SetServing(false);
    health_->Shutdown();
    // New calls are refused from here; Shutdown waits (up to the drain
    // timeout) for the calls already accepted, which the executor completes.
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(options_.drain_timeout_s));
  }
  // Requests still being decoded go on to the executor, which finishes them.
  if (service_ != nullptr) service_->StopDecoding();
  executor_.Stop();
}

absl::Status RunServer(const ServerOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentationServer> server,
                   SegmentationServer::Start(options));
  const int signal = WaitForStopSignal(stop_signals);
  LogEvent("draining", {{"signal", absl::StrCat(signal)}});
  server->Drain();
  LogEvent("stopped", {});
  return absl::OkStatus();
}

}  // namespace unet
