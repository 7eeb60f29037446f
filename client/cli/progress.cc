#include "client/cli/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace unet::client {

std::string RunSummary::ToString() const {
  return absl::StrFormat(
      "%d ok, %d failed, %d skipped in %.1f s: %.2f images/s, latency p50 "
      "%.0f ms, p95 %.0f ms, largest batch %d",
      ok, failed, skipped, seconds, images_per_second, p50_latency_ms,
      p95_latency_ms, largest_batch);
}

double Quantile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  const size_t rank = static_cast<size_t>(
      std::ceil(fraction * static_cast<double>(values.size())));
  const size_t index = std::clamp<size_t>(rank, 1, values.size()) - 1;
  std::nth_element(values.begin(), values.begin() + index, values.end());
  return values[index];
}

std::string FormatProgressBar(int done, int total, double images_per_second,
                              int failed) {
  constexpr int kWidth = 24;
  const int filled = total > 0 ? kWidth * done / total : kWidth;
  std::string line = absl::StrCat(
      "[", std::string(filled, '#'), std::string(kWidth - filled, '-'), "] ",
      done, "/", total, absl::StrFormat("  %.1f img/s", images_per_second));
  if (images_per_second > 0 && done < total) {
    const int eta =
        static_cast<int>(std::ceil((total - done) / images_per_second));
    absl::StrAppendFormat(&line, "  ETA %d:%02d", eta / 60, eta % 60);
  }
  if (failed > 0) absl::StrAppend(&line, "  failed ", failed);
  return line;
}

double ProgressReporter::SteadySeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ProgressReporter::ProgressReporter(int total, bool bar, std::ostream& results,
                                   std::ostream& messages,
                                   std::function<double()> now_seconds)
    : total_(total),
      bar_(bar),
      results_(results),
      messages_(messages),
      now_seconds_(std::move(now_seconds)),
      start_(now_seconds_()) {
  std::lock_guard lock(mutex_);
  DrawBar(/*force=*/true);
}

void ProgressReporter::Succeeded(const std::filesystem::path& input,
                                 const std::filesystem::path& mask,
                                 double latency_ms, int batch_size) {
  std::lock_guard lock(mutex_);
  ++summary_.ok;
  latencies_ms_.push_back(latency_ms);
  summary_.largest_batch = std::max(summary_.largest_batch, batch_size);
  if (bar_) {
    DrawBar(/*force=*/false);
  } else {
    results_ << absl::StrFormat("ok %s -> %s  %.1f ms  batch %d\n",
                                input.string(), mask.string(), latency_ms,
                                batch_size)
             << std::flush;
  }
}

void ProgressReporter::Failed(const std::filesystem::path& input,
                              const absl::Status& status) {
  std::lock_guard lock(mutex_);
  ++summary_.failed;
  ClearBar();
  messages_ << "FAILED " << input.string() << ": "
            << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  DrawBar(/*force=*/true);
}

void ProgressReporter::Skipped(const std::filesystem::path& input) {
  std::lock_guard lock(mutex_);
  ++summary_.skipped;
  if (bar_) {
    DrawBar(/*force=*/false);
  } else {
    results_ << "skipped " << input.string() << ": outputs exist\n"
             << std::flush;
  }
}

RunSummary ProgressReporter::Finish() {
  std::lock_guard lock(mutex_);
  DrawBar(/*force=*/true);
  if (bar_) messages_ << "\n";
  summary_.seconds = now_seconds_() - start_;
  const int processed = summary_.ok + summary_.failed;
  summary_.images_per_second =
      summary_.seconds > 0 ? processed / summary_.seconds : 0;
  summary_.p50_latency_ms = Quantile(latencies_ms_, 0.50);
  summary_.p95_latency_ms = Quantile(latencies_ms_, 0.95);
  results_ << summary_.ToString() << "\n" << std::flush;
  return summary_;
}

void ProgressReporter::DrawBar(bool force) {
  if (!bar_) return;
  const double now = now_seconds_();
  const int done = summary_.ok + summary_.failed + summary_.skipped;
  if (!force && done < total_ && now - last_drawn_ < 0.1) return;
  last_drawn_ = now;
  const double elapsed = now - start_;
  const int processed = summary_.ok + summary_.failed;
  const double rate = elapsed > 0 ? processed / elapsed : 0;
  messages_ << "\r\033[K"
            << FormatProgressBar(done, total_, rate, summary_.failed)
            << std::flush;
}

void ProgressReporter::ClearBar() {
  if (bar_) messages_ << "\r\033[K";
}

}  // namespace unet::client
