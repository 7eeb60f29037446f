// segment_benchmark: what the server costs against the raw forward pass.
//
// Starts the real server in-process on loopback (planning on CPUs as the
// binary does, unless --instances, --cpu_threads or --max_batch_size fix the
// plan), measures the raw in-process forward throughput of the same model
// version (the limit), then sweeps the number of concurrent Segment callers
// and prints Markdown tables. On CPUs the limit is the best of the
// planner's candidate plans run raw: that many engines side by side, each
// running the module alone; on a GPU, the served engine at each batch size.
// On CPUs each level is cut into windows and held against the best plan and
// the batch-1 pass re-timed raw between them, since a shared machine's
// speed drifts over minutes (benchmark/level_runner.h).
// With --server it only drives a server that is already running (another
// build, or benchmark/python_baseline_server.py); --raw_version_dir then
// times that version's limit in this process, as above.
//
//   build/bin/segment_benchmark --concurrency=1,4,16,64 --seconds=20

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "benchmark/level_runner.h"
#include "client/connection.h"
#include "common/command_line.h"
#include "common/cpu_threads.h"
#include "common/machine_memory.h"
#include "common/status_macros.h"
#include "model/imaging/preprocess.h"
#include "model/imaging/tiling.h"
#include "model/model_config.h"
#include "model/model_repository.h"
#include "model/onednn_conv.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "server/engine/cpu_planner.h"
#include "server/engine/torch_engine.h"
#include "server/imaging/image_decoder.h"
#include "server/segmentation_server.h"

ABSL_FLAG(std::string, model_root, UNET_DEFAULT_MODEL_ROOT, "model repository");
ABSL_FLAG(std::string, model, "", "model to benchmark (empty: the only one)");
ABSL_FLAG(std::string, image, UNET_DEFAULT_IMAGE, "request image");
ABSL_FLAG(std::string, device, "", "as the server's --device");
ABSL_FLAG(std::string, precision, "fp32", "fp32, fp16 or bf16");
ABSL_FLAG(bool, channels_last, false,
          "as the server's flag (default: on with CPUs alone)");
ABSL_FLAG(
    bool, fused_conv_relu, true,
    "on CPUs, each ReLU fused into its convolution (model/onednn_conv.h); "
    "false times LibTorch's convolutions and separate ReLU pass");
ABSL_FLAG(int, instances, 0, "as the server's --instances");
ABSL_FLAG(int, cpu_threads, 0, "as the server's --cpu_threads");
ABSL_FLAG(int, max_batch_size, 0,
          "as the server's flag; also the largest raw batch timed");
ABSL_FLAG(double, plan_seconds, 12, "as the server's --plan_seconds");
ABSL_FLAG(std::string, server, "",
          "HOST:PORT of a running server to load instead (no raw limit)");
ABSL_FLAG(std::string, label, "", "names the server in the output");
ABSL_FLAG(std::string, raw_version_dir, "",
          "with --server, on CPUs: time this model version raw in-process "
          "over the planner's candidate plans, as without --server, and hold "
          "the server against that limit");
ABSL_FLAG(int, max_queue_delay_us, 2000, "as the server's flag");
ABSL_FLAG(std::string, concurrency, "1,4,16,64", "concurrent callers to sweep");
ABSL_FLAG(double, seconds, 20, "measured seconds per concurrency level");
ABSL_FLAG(int, windows, 8,
          "CPUs: measured windows per level, the raw pass timed before the "
          "first and after each");
ABSL_FLAG(int, tiled_side, 0,
          "also run the tiled case: a square image this large (the request "
          "image repeated), sent as OVERLAP_TILE (0: no tiled case)");
ABSL_FLAG(std::string, tiled_concurrency, "1,8",
          "concurrent callers of the tiled case");
ABSL_FLAG(int, tile_size, 0, "as the server's --tile_size");
ABSL_FLAG(double, tiled_seconds, 0,
          "measured seconds per tiled concurrency level (0: --seconds); "
          "long enough for a few tiled images per caller");

namespace unet {
namespace {

using segmentation::v1::SegmentRequest;

// Returns images per second of the engine's whole pass (host batch in,
// labels out: the copies and the arg max included) on batches of `batch`
// copies of `image`, timed over at least `seconds` after two untimed passes.
absl::StatusOr<double> EnginePassThroughput(InferenceEngine& engine,
                                            const PreparedImage& image,
                                            int batch, double seconds) {
  FloatTensor input{
      {batch, image.channels, image.padded_height, image.padded_width}, {}};
  for (int i = 0; i < batch; ++i) {
    input.values.insert(input.values.end(), image.chw.begin(), image.chw.end());
  }
  for (int i = 0; i < 2; ++i) {
    RETURN_IF_ERROR(engine.ForwardLabels(input).status());
  }
  const absl::Time start = absl::Now();
  int passes = 0;
  while (absl::ToDoubleSeconds(absl::Now() - start) < seconds || passes < 3) {
    RETURN_IF_ERROR(engine.ForwardLabels(input).status());
    ++passes;
  }
  return passes * batch / absl::ToDoubleSeconds(absl::Now() - start);
}

// Returns the request every caller sends: the encoded image.
SegmentRequest ImageRequest(const std::string& image) {
  SegmentRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.mutable_image()->set_encoded(image);
  return request;
}

// The raw pass timed again between two windows of a level.
struct RawNow {
  double images_per_second = 0;  // the best plan
  double batch1_ms = 0;          // median pass of one instance, batch 1
};

// The limit a server is held to: the best raw in-process throughput, and
// per batch size the best raw throughput at that batch.
struct Limit {
  double images_per_second = 0;
  std::map<int, double> by_batch;
  // CPUs: the best plan's raw images/s, and the median raw batch-1 pass
  // (ms) at the fastest thread count, timed once more for as long as given
  // (half of it each). The machine's speed drifts over minutes (a shared
  // VM), so each window of a level is also held against both timed right
  // before and after it.
  std::function<absl::StatusOr<RawNow>(absl::Duration)> retime;
};

// GPU (or fixed plans): the served engine alone at each batch size up to
// `max_batch`, from a fresh thread, as the server's workers call it. "raw"
// is the module alone on a batch already on the device, synchronised after
// each pass, as a plain LibTorch program runs it; "engine pass" adds what
// serving must do per batch: the copy in, the arg max and the copy of the
// labels back.
absl::StatusOr<Limit> TimeBatches(InferenceEngine& engine,
                                  const PreparedImage& prepared, int max_batch,
                                  double seconds) {
  std::cout << "| batch | raw forward images/s | raw ms per batch "
               "| engine pass images/s |\n"
               "|---:|---:|---:|---:|\n";
  std::vector<int> batches;
  for (int batch = 1; batch < max_batch; batch *= 2) batches.push_back(batch);
  batches.push_back(max_batch);
  Limit limit;
  double raw_single = 0;
  int best_batch = 1;
  for (int batch : batches) {
    absl::StatusOr<double> raw, pass;
    std::thread([&] {
      raw = MeasureRawForward(engine,
                              {batch, prepared.channels, prepared.padded_height,
                               prepared.padded_width},
                              seconds / 2);
      pass = EnginePassThroughput(engine, prepared, batch, seconds / 2);
    }).join();
    RETURN_IF_ERROR(raw.status());
    RETURN_IF_ERROR(pass.status());
    limit.by_batch[batch] = *raw;
    if (batch == 1) raw_single = *raw;
    if (*raw > limit.images_per_second) {
      limit.images_per_second = *raw;
      best_batch = batch;
    }
    std::cout << absl::StrFormat("| %d | %.2f | %.2f | %.2f |", batch, *raw,
                                 1000.0 * batch / *raw, *pass)
              << std::endl;
  }
  std::cout << absl::StrFormat(
      "\nlimit: raw batch %d, %.2f images/s; raw batch-1 latency %.2f ms\n\n",
      best_batch, limit.images_per_second, 1000.0 / raw_single);
  return limit;
}

// Times one engine's batch-1 pass with the 3x3 convolutions as
// model/onednn_conv runs them (oneDNN, ReLU fused, channels-last from the
// first layer on) and as LibTorch does (its convolution, then a ReLU pass),
// alternating pass by pass so that both see the same machine, at 1 thread
// and at all usable CPUs; prints medians.
absl::Status CompareFusedRelu(InferenceEngine& engine,
                              const PreparedImage& prepared) {
  constexpr int kRounds = 15;
  std::cout
      << "\n| batch-1 pass, median of " << kRounds
      << " alternating | threads | onednn_conv ms | LibTorch conv, "
         "ReLU ms | LibTorch / onednn_conv |\n|---|---:|---:|---:|---:|\n";
  const std::vector<int64_t> shape = {
      1, prepared.channels, prepared.padded_height, prepared.padded_width};
  absl::Status status;
  std::thread timing([&] {  // a fresh thread, as the server's workers
    for (int threads : {1, UsableCpus()}) {
      SetCpuThreads(threads);
      std::vector<double> ms[2];  // [fused]
      for (int round = -1; round < kRounds && status.ok(); ++round) {
        for (bool fused : {true, false}) {
          EnableFusedConvolveRelu(fused);
          const absl::Time start = absl::Now();
          status = RunRawForward(engine, shape);
          // Round -1 warms both paths up.
          if (round >= 0) {
            ms[fused].push_back(
                absl::ToDoubleMilliseconds(absl::Now() - start));
          }
        }
      }
      EnableFusedConvolveRelu(true);
      if (!status.ok()) return;
      for (auto& times : ms) {
        std::nth_element(times.begin(), times.begin() + kRounds / 2,
                         times.end());
      }
      const double fused = ms[1][kRounds / 2], separate = ms[0][kRounds / 2];
      std::cout << absl::StrFormat("| | %d | %.1f | %.1f | %.2f |\n", threads,
                                   fused, separate, separate / fused);
    }
  });
  timing.join();
  return status;
}

// The median time of batch-1 passes of instance 0 on `threads` intra-op
// threads, from a fresh thread as a server worker runs them, over `slice`
// (at least 5 passes, after one untimed). The median, as the server's p50
// is held to it.
absl::StatusOr<double> MedianBatch1Ms(const PassFn& pass, int threads,
                                      absl::Duration slice) {
  std::vector<double> ms;
  absl::Status status;
  std::thread([&] {
    SetCpuThreads(threads);
    status = pass(0, 1);
    const absl::Time start = absl::Now();
    while (status.ok() && (ms.size() < 5 || absl::Now() - start < slice)) {
      const absl::Time begin = absl::Now();
      status = pass(0, 1);
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - begin));
    }
  }).join();
  RETURN_IF_ERROR(status);
  return Percentile(std::move(ms), 0.5);
}

// CPUs: every candidate plan of the server's planner, timed raw: that many
// fresh engines of the version side by side, each on its own thread with
// the plan's intra-op threads, running the module alone. The best is the
// CPU limit; the batch-1 latency of one engine alone at each thread count is
// what a request on an idle server cannot beat.
absl::StatusOr<Limit> TimeCpuPlans(const std::filesystem::path& version_dir,
                                   const ModelConfig& config,
                                   const EngineOptions& engine_options,
                                   const PreparedImage& prepared,
                                   double seconds) {
  const std::vector<CpuPlan> plans = CpuPlanCandidates(UsableCpus(), 2);
  // Shared with Limit::retime, which outlives this call.
  auto engines =
      std::make_shared<std::vector<std::unique_ptr<InferenceEngine>>>();
  for (const CpuPlan& plan : plans) {
    while (static_cast<int>(engines->size()) < plan.instances) {
      ASSIGN_OR_RETURN(auto engine,
                       LoadTorchEngine(version_dir, config, engine_options));
      engines->push_back(std::move(engine));
    }
  }
  const std::vector<int64_t> input_shape = {
      prepared.channels, prepared.padded_height, prepared.padded_width};
  const PassFn raw_pass = [engines, input_shape](int instance, int batch) {
    return RunRawForward(
        *(*engines)[instance],
        {batch, input_shape[0], input_shape[1], input_shape[2]});
  };
  std::cout << "| raw plan (instances x threads, batch) | raw images/s "
               "| raw batch-1 ms, one instance at these threads |\n"
               "|---|---:|---:|\n";
  Limit limit;
  std::map<int, double> latency_ms;  // threads -> ms
  std::string best_plan;
  CpuPlan best;
  for (const CpuPlan& plan : plans) {
    ASSIGN_OR_RETURN(const PlanMeasurement measured,
                     MeasureCpuPlan(plan, plan.threads, raw_pass, SetCpuThreads,
                                    absl::Seconds(seconds / 2),
                                    /*min_passes=*/3, latency_ms));
    const double rate = measured.images_per_second;
    const std::string name = absl::StrFormat(
        "%d x %d, batch %d", plan.instances, plan.threads, plan.max_batch_size);
    double& at_batch = limit.by_batch[plan.max_batch_size];
    at_batch = std::max(at_batch, rate);
    if (rate > limit.images_per_second) {
      limit.images_per_second = rate;
      best_plan = name;
      best = plan;
    }
    std::cout << absl::StrFormat("| %s | %.2f | %.1f |", name, rate,
                                 measured.latency_ms)
              << std::endl;
  }
  if (HasFusedConvolveRelu()) {
    RETURN_IF_ERROR(CompareFusedRelu(*engines->front(), prepared));
  }
  const auto fastest = std::min_element(
      latency_ms.begin(), latency_ms.end(),
      [](const auto& a, const auto& b) { return a.second < b.second; });
  const int lone_threads = fastest->first;
  limit.retime = [best, lone_threads,
                  raw_pass](absl::Duration slice) -> absl::StatusOr<RawNow> {
    RawNow now;
    ASSIGN_OR_RETURN(now.images_per_second,
                     TimeCpuPlan(best, raw_pass, SetCpuThreads, slice / 2,
                                 /*min_passes=*/3));
    ASSIGN_OR_RETURN(now.batch1_ms,
                     MedianBatch1Ms(raw_pass, lone_threads, slice / 2));
    return now;
  };
  std::cout << absl::StrFormat(
      "\nlimit: raw plan %s, %.2f images/s; best raw batch-1 latency %.1f ms "
      "(%d threads)\n\n",
      best_plan, limit.images_per_second, fastest->second, fastest->first);
  return limit;
}

// "median (min-max)" of `values`.
std::string MedianAndRange(const std::vector<double>& values) {
  if (values.empty()) return "-";
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  return absl::StrFormat("%.2f (%.2f-%.2f)", Percentile(values, 0.5), *low,
                         *high);
}

// Sweeps --concurrency against `target` and prints one table; the columns
// against the limit only when there is one. On CPUs each level is cut into
// --windows windows, and the best plan and the batch-1 pass are timed raw
// before the first and after each ("paired"): each window's throughput
// over the mean of the raw rates timed just before and after it, and its
// p50 over the mean of the raw batch-1 medians; the table gives the median
// of those ratios over the windows, and their range.
absl::Status RunLevels(const Target& target, const std::string& image,
                       const Limit* limit) {
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const bool paired = limit != nullptr && limit->retime;
  if (limit != nullptr) {
    // "vs same batch" compares with the raw pass at the measured batch size
    // nearest the server's mean batch: the cost of serving that batch.
    std::cout << "| concurrency | images/s | vs limit | vs raw, paired "
                 "(windows' median, range) | vs same batch | p50 ms | p50 vs "
                 "raw batch-1, paired (windows' median, range) | raw batch-1 "
                 "ms between windows | p95 ms | p99 ms | mean batch "
                 "| completed | failed |\n"
                 "|---:|---:|---:|---|---:|---:|---|---|---:|---:|---:|---:|"
                 "---:|\n";
  } else {
    std::cout << "| concurrency | images/s | p50 ms | p95 ms | p99 ms "
                 "| completed | failed |\n"
                 "|---:|---:|---:|---:|---:|---:|---:|\n";
  }
  std::vector<LevelResult> results;
  for (absl::string_view level :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    LevelOptions options;
    if (!absl::SimpleAtoi(level, &options.concurrency) ||
        options.concurrency < 1) {
      return absl::InvalidArgumentError("bad --concurrency");
    }
    options.seconds = seconds;
    std::vector<RawNow> raw;  // before the first window and after each
    if (paired) {
      options.windows = std::max(absl::GetFlag(FLAGS_windows), 1);
      options.between = [&](int) -> absl::Status {
        ASSIGN_OR_RETURN(
            RawNow now,
            limit->retime(absl::Seconds(seconds / options.windows / 2)));
        raw.push_back(now);
        return absl::OkStatus();
      };
    }
    ASSIGN_OR_RETURN(const LevelResult r,
                     RunLevel(target, ImageRequest(image), options));
    results.push_back(r);
    const double throughput = r.completed / r.seconds;
    if (limit == nullptr) {
      std::cout << absl::StrFormat(
                       "| %d | %.2f | %.2f | %.2f | %.2f | %d | %d |",
                       r.concurrency, throughput, r.p50_ms, r.p95_ms, r.p99_ms,
                       r.completed, r.failed)
                << std::endl;
      continue;
    }
    const auto same_batch =
        std::min_element(limit->by_batch.begin(), limit->by_batch.end(),
                         [&](const auto& a, const auto& b) {
                           return std::abs(a.first - r.mean_batch) <
                                  std::abs(b.first - r.mean_batch);
                         });
    std::vector<double> rate_ratios, latency_ratios, raw_ms;
    for (size_t w = 0; paired && w < r.windows.size(); ++w) {
      const WindowResult& window = r.windows[w];
      rate_ratios.push_back(
          2 * window.images_per_second() /
          (raw[w].images_per_second + raw[w + 1].images_per_second));
      latency_ratios.push_back(2 * window.p50_ms /
                               (raw[w].batch1_ms + raw[w + 1].batch1_ms));
    }
    for (const RawNow& now : raw) raw_ms.push_back(now.batch1_ms);
    std::cout << absl::StrFormat(
                     "| %d | %.2f | %.2f | %s | %.2f (batch %d) | %.2f | %s "
                     "| %s | %.2f | %.2f | %.2f | %d | %d |",
                     r.concurrency, throughput,
                     throughput / limit->images_per_second,
                     MedianAndRange(rate_ratios),
                     throughput / same_batch->second, same_batch->first,
                     r.p50_ms, MedianAndRange(latency_ratios),
                     raw_ms.empty()
                         ? "-"
                         : absl::StrJoin(raw_ms, "/",
                                         [](std::string* out, double ms) {
                                           absl::StrAppendFormat(out, "%.1f",
                                                                 ms);
                                         }),
                     r.p95_ms, r.p99_ms, r.mean_batch, r.completed, r.failed)
              << std::endl;
  }
  // Where a call's time goes, by the server's own timing of each.
  std::cout << "\n| concurrency | median queue ms | preprocess ms (decode, "
               "prepare) | inference ms (pass, arg max) | postprocess ms "
               "(mask, encode) | p50 ms, end to end |\n"
               "|---:|---:|---:|---:|---:|---:|\n";
  for (const LevelResult& r : results) {
    std::cout << absl::StrFormat("| %d | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                                 r.concurrency, r.queue_ms, r.preprocess_ms,
                                 r.inference_ms, r.postprocess_ms, r.p50_ms);
  }
  std::cout << std::endl;
  return absl::OkStatus();
}

// The tiled case: a --tiled_side square image (the request image repeated)
// sent as OVERLAP_TILE at each --tiled_concurrency, against the raw limit of
// its tiles, timed as the whole-image limit is (`time_tiles`).
absl::Status RunTiledCase(
    const Target& target, const cv::Mat& pixels, const LoadedModel& model,
    int tile_size,
    const std::function<absl::StatusOr<Limit>(const PreparedImage&)>&
        time_tiles) {
  const int side = absl::GetFlag(FLAGS_tiled_side);
  cv::Mat large;
  cv::repeat(pixels, side / pixels.rows + 1, side / pixels.cols + 1, large);
  large = large(cv::Rect(0, 0, side, side)).clone();
  ASSIGN_OR_RETURN(const TilePlan plan,
                   PlanTiles(side, side, tile_size, model.config));
  ASSIGN_OR_RETURN(const PreparedImage tile,
                   PrepareWindow(large, model.config, plan.Window(0)));
  std::cout << absl::StrFormat(
      "tiled case: %dx%d image, %d tiles of %dx%d input (stride %d), "
      "efficiency %.3f (output pixels used / computed)\n\n",
      side, side, plan.tiles(), plan.tile_width, plan.tile_height,
      plan.stride_x, plan.Efficiency());
  ASSIGN_OR_RETURN(const Limit limit, time_tiles(tile));
  SegmentRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_resize_mode(SegmentRequest::OVERLAP_TILE);
  request.set_mask_encoding(segmentation::v1::RAW);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_width(side);
  raw->set_height(side);
  raw->set_channels(large.channels());
  raw->set_pixel_type(segmentation::v1::PIXEL_TYPE_UINT8);
  raw->set_data(large.data, large.total() * large.elemSize());
  std::cout << "| concurrency | images/s | tiles/s | vs raw tiles limit "
               "| p50 s | mean tiles per pass | completed | failed |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (absl::string_view level :
       absl::StrSplit(absl::GetFlag(FLAGS_tiled_concurrency), ',')) {
    int concurrency = 0;
    if (!absl::SimpleAtoi(level, &concurrency) || concurrency < 1) {
      return absl::InvalidArgumentError("bad --tiled_concurrency");
    }
    LevelOptions options;
    options.concurrency = concurrency;
    options.seconds = absl::GetFlag(FLAGS_tiled_seconds) > 0
                          ? absl::GetFlag(FLAGS_tiled_seconds)
                          : absl::GetFlag(FLAGS_seconds);
    ASSIGN_OR_RETURN(const LevelResult r, RunLevel(target, request, options));
    const double images = r.completed / r.seconds;
    const double tiles = images * plan.tiles();
    std::cout << absl::StrFormat(
                     "| %d | %.3f | %.2f | %.2f | %.2f | %.2f | %d | %d |",
                     concurrency, images, tiles,
                     tiles / limit.images_per_second, r.p50_ms / 1000,
                     r.mean_tile_batch, r.completed, r.failed)
              << std::endl;
  }
  return absl::OkStatus();
}

// The pixels of the request image, as the server decodes them (the
// benchmark's own image: no limits to speak of).
absl::StatusOr<cv::Mat> DecodeRequestImage(const std::string& bytes) {
  segmentation::v1::Image image;
  image.set_encoded(bytes);
  return DecodeImage(image, DecodeLimits{int64_t{1} << 30, 65536});
}

// The CPU limit of the model version in `dir` on `image`, for a server
// that runs elsewhere: its candidate plans timed raw in this process.
absl::StatusOr<Limit> TimeVersionRaw(const std::filesystem::path& dir,
                                     const std::string& image,
                                     bool channels_last_given) {
  ASSIGN_OR_RETURN(const ModelConfig config,
                   ReadModelConfig(dir / kConfigFile));
  ASSIGN_OR_RETURN(const cv::Mat pixels, DecodeRequestImage(image));
  ASSIGN_OR_RETURN(const PreparedImage prepared, Preprocess(pixels, config));
  EngineOptions engine_options;
  engine_options.precision = absl::GetFlag(FLAGS_precision);
  // As the server runs on CPUs alone unless told otherwise.
  engine_options.channels_last =
      channels_last_given ? absl::GetFlag(FLAGS_channels_last) : true;
  std::cout << absl::StrFormat("raw limit of %s, input %dx%d\n\n", dir.string(),
                               prepared.padded_width, prepared.padded_height);
  return TimeCpuPlans(dir, config, engine_options, prepared,
                      absl::GetFlag(FLAGS_seconds));
}

absl::Status Run(bool channels_last_given) {
  std::ifstream file(absl::GetFlag(FLAGS_image), std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  if (!absl::GetFlag(FLAGS_server).empty()) {
    std::cout << absl::StrFormat(
        "server %s at %s, image %s\n\n", absl::GetFlag(FLAGS_label),
        absl::GetFlag(FLAGS_server), absl::GetFlag(FLAGS_image));
    ASSIGN_OR_RETURN(ConnectionOptions connection,
                     ConnectionOptionsFromFlags());
    std::optional<Limit> limit;
    if (!absl::GetFlag(FLAGS_raw_version_dir).empty()) {
      ASSIGN_OR_RETURN(limit,
                       TimeVersionRaw(absl::GetFlag(FLAGS_raw_version_dir),
                                      bytes.str(), channels_last_given));
    }
    return RunLevels({absl::GetFlag(FLAGS_server), std::move(connection)},
                     bytes.str(), limit ? &*limit : nullptr);
  }

  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  options.metrics_address = "127.0.0.1";
  options.metrics_port = 0;
  options.model_root = absl::GetFlag(FLAGS_model_root);
  options.default_model = absl::GetFlag(FLAGS_model);
  options.devices = absl::GetFlag(FLAGS_device);
  options.instances_per_device = std::max(absl::GetFlag(FLAGS_instances), 1);
  options.cpu_threads = absl::GetFlag(FLAGS_cpu_threads);
  options.plan_cpu_execution = absl::GetFlag(FLAGS_instances) == 0 &&
                               absl::GetFlag(FLAGS_cpu_threads) == 0 &&
                               absl::GetFlag(FLAGS_max_batch_size) == 0;
  options.planner.budget = absl::Seconds(absl::GetFlag(FLAGS_plan_seconds));
  options.engine.precision = absl::GetFlag(FLAGS_precision);
  options.engine.channels_last = absl::GetFlag(FLAGS_channels_last);
  options.channels_last_by_device = !channels_last_given;
  options.batcher.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.batcher.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  options.batcher.max_queue_size = 1024;
  options.service.tile_size = absl::GetFlag(FLAGS_tile_size);
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentationServer> server,
                   SegmentationServer::Start(options));
  ASSIGN_OR_RETURN(const std::shared_ptr<const LoadedModel> model,
                   server->models().Find(options.default_model, 0));
  const segmentation::v1::ExecutionPlan& plan = server->execution_plan();

  ASSIGN_OR_RETURN(const cv::Mat pixels, DecodeRequestImage(bytes.str()));
  ASSIGN_OR_RETURN(const PreparedImage prepared,
                   Preprocess(pixels, model->config));
  std::cout << absl::StrFormat(
      "model %s v%d (%s, channels %s), device %s, precision %s%s, "
      "image %dx%d -> input %dx%d, plan (%s): %d instances x %d threads, "
      "max_batch_size %d, max_queue_delay_us %d\n\n",
      model->name, model->version, model->config.format(),
      absl::StrJoin(model->config.architecture().channels(), "/"),
      model->devices(), options.engine.precision,
      server->channels_last() ? " channels-last" : "", prepared.width,
      prepared.height, prepared.padded_width, prepared.padded_height,
      plan.chosen_by(), plan.instances_per_device(),
      plan.threads_per_instance(), plan.max_batch_size(),
      absl::GetFlag(FLAGS_max_queue_delay_us));
  const double seconds = absl::GetFlag(FLAGS_seconds);
  EngineOptions engine_options;
  engine_options.precision = options.engine.precision;
  engine_options.channels_last = server->channels_last();
  // The limit of passes over `input`, as the server would run them.
  const auto time_limit =
      [&](const PreparedImage& input) -> absl::StatusOr<Limit> {
    if (model->devices() == "cpu") {
      return TimeCpuPlans(std::filesystem::path(options.model_root) /
                              model->name / absl::StrCat(model->version),
                          model->config, engine_options, input, seconds);
    }
    return TimeBatches(*model->engines.front(), input, plan.max_batch_size(),
                       seconds);
  };
  const Target target{absl::StrCat("127.0.0.1:", server->port()), {}};
  ASSIGN_OR_RETURN(const Limit limit, time_limit(prepared));
  RETURN_IF_ERROR(RunLevels(target, bytes.str(), &limit));
  if (absl::GetFlag(FLAGS_tiled_side) > 0) {
    RETURN_IF_ERROR(
        RunTiledCase(target, pixels, *model, server->tile_size(), time_limit));
  }
  server->Drain();
  return absl::OkStatus();
}

}  // namespace
}  // namespace unet

int main(int argc, char** argv) {
  unet::TuneAllocator();  // as the server binary runs
  absl::ParseCommandLine(argc, argv);
  unet::EnableFusedConvolveRelu(absl::GetFlag(FLAGS_fused_conv_relu));
  const absl::Status status =
      unet::Run(unet::FlagGivenOnCommandLine(argc, argv, "channels_last"));
  if (!status.ok()) {
    std::cerr << "segment_benchmark: " << status << "\n";
    return 1;
  }
  return 0;
}
