#include "model/training/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace unet {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = std::llround(seconds);
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
}

std::string ProgressLine(const ProgressSnapshot& snapshot, int bar_width) {
  const double done = snapshot.total_steps > 0
                          ? std::clamp(static_cast<double>(snapshot.step) /
                                           snapshot.total_steps,
                                       0.0, 1.0)
                          : 0;
  const int filled = static_cast<int>(done * bar_width);
  const double eta =
      snapshot.images_per_second > 0
          ? (snapshot.total_steps - snapshot.step) / snapshot.images_per_second
          : -1;
  const std::string bar =
      bar_width > 0 ? absl::StrCat("[", std::string(filled, '#'),
                                   std::string(bar_width - filled, '.'), "] ")
                    : "";
  return absl::StrFormat("%s%d/%d  loss %.4f  %.2f img/s  ETA %s", bar,
                         snapshot.step, snapshot.total_steps, snapshot.loss,
                         snapshot.images_per_second, FormatDuration(eta));
}

ProgressReporter::ProgressReporter(std::FILE* out, bool terminal,
                                   int plain_every)
    : out_(out), terminal_(terminal), plain_every_(plain_every) {}

void ProgressReporter::Update(const ProgressSnapshot& snapshot) {
  const bool last = snapshot.step == snapshot.total_steps;
  if (terminal_) {
    // \33[K clears what a longer previous line left behind.
    absl::FPrintF(out_, "\r%s\33[K", ProgressLine(snapshot, 30));
    bar_shown_ = !last;
    if (last) absl::FPrintF(out_, "\n");
  } else if (snapshot.step % plain_every_ == 0 || last) {
    absl::FPrintF(out_, "step %s\n", ProgressLine(snapshot, 0));
  }
  std::fflush(out_);
}

void ProgressReporter::Message(const std::string& line) {
  if (bar_shown_) absl::FPrintF(out_, "\r\33[K");
  absl::FPrintF(out_, "%s\n", line);
  bar_shown_ = false;
  std::fflush(out_);
}

}  // namespace unet
