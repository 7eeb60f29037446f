#ifndef BENCHMARK_LEVEL_RUNNER_H_
#define BENCHMARK_LEVEL_RUNNER_H_

// One concurrency level of a benchmark: `concurrency` callers send the same
// Segment request as fast as their replies come. The measured time may be
// cut into windows with the callers paused between them, nothing in flight,
// so that something else (the raw forward pass, timed in the benchmark's
// process) can be measured in the gaps: on a machine whose speed drifts
// over minutes, each window is then held against what was timed right
// before and after it, rather than against one timing minutes away.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/connection.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet {

// A server to call: its address and how to reach it.
struct Target {
  std::string address;
  ConnectionOptions connection;
};

struct WindowResult {
  double seconds = 0;
  int completed = 0;
  double p50_ms = 0;
  double images_per_second() const {
    return seconds > 0 ? completed / seconds : 0;
  }
};

struct LevelResult {
  int concurrency = 0;
  int completed = 0, failed = 0;
  double seconds = 0;  // measured, over all windows
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, mean_batch = 0;
  double mean_tile_batch = 0;  // tiled requests: tiles per pass
  // Medians of the server's own timing of each call (ms).
  double queue_ms = 0, preprocess_ms = 0, inference_ms = 0, postprocess_ms = 0;
  std::vector<WindowResult> windows;
};

struct LevelOptions {
  int concurrency = 1;
  double seconds = 20;  // measured, over all windows together
  int windows = 1;
  // Called before the first window and after each (windows + 1 calls, with
  // the window's index before it), while no call is in flight; an error
  // ends the level with it.
  std::function<absl::Status(int)> between;
};

// The percentile q (0..1) of `values`, nearest rank; 0 when empty.
double Percentile(std::vector<double> values, double q);

// Runs one level. The callers warm up (every one finishes a call) before
// the first window and after each pause, unmeasured.
absl::StatusOr<LevelResult> RunLevel(
    const Target& target, const segmentation::v1::SegmentRequest& request,
    const LevelOptions& options);

}  // namespace unet

#endif  // BENCHMARK_LEVEL_RUNNER_H_
