#ifndef CLIENT_CLI_PROGRESS_H_
#define CLIENT_CLI_PROGRESS_H_

// What `segment` tells people while it runs: on a terminal one progress bar
// redrawn in place (done/total, images/s, ETA, failures), otherwise one plain
// line per input; failures always get a line of their own; a summary ends
// the run.

#include <filesystem>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace unet::client {

struct RunSummary {
  int ok = 0;
  int failed = 0;
  int skipped = 0;
  double seconds = 0;
  double images_per_second = 0;  // segmented or failed, per second
  double p50_latency_ms = 0;     // of the successful requests
  double p95_latency_ms = 0;
  int largest_batch = 0;  // most requests that shared one forward pass

  std::string ToString() const;
};

// Returns the `fraction` quantile (0..1) of `values` by the nearest rank;
// 0 for none.
double Quantile(std::vector<double> values, double fraction);

// Returns the bar line: "[#####-----]  12/100  3.4 img/s  ETA 0:26  failed 1".
std::string FormatProgressBar(int done, int total, double images_per_second,
                              int failed);

// Thread-safe: the jobs report to it concurrently.
class ProgressReporter {
 public:
  // `bar`: redraw a bar on `messages` (a terminal); else write plain lines.
  // Results and the summary go to `results`, failures to `messages`.
  // `now_seconds` is the clock (steady, in seconds); tests pass their own.
  ProgressReporter(int total, bool bar, std::ostream& results,
                   std::ostream& messages,
                   std::function<double()> now_seconds = SteadySeconds);

  void Succeeded(const std::filesystem::path& input,
                 const std::filesystem::path& mask, double latency_ms,
                 int batch_size);
  void Failed(const std::filesystem::path& input, const absl::Status& status);
  void Skipped(const std::filesystem::path& input);

  // Clears the bar, prints the summary and returns it.
  RunSummary Finish();

  static double SteadySeconds();

 private:
  // Redraws the bar if it is time to (at most 10 times a second, and at the
  // end). Requires mutex_.
  void DrawBar(bool force);
  void ClearBar();

  const int total_;
  const bool bar_;
  std::ostream& results_;
  std::ostream& messages_;
  const std::function<double()> now_seconds_;
  const double start_;

  std::mutex mutex_;
  RunSummary summary_;
  std::vector<double> latencies_ms_;
  double last_drawn_ = -1;
};

}  // namespace unet::client

#endif  // CLIENT_CLI_PROGRESS_H_
