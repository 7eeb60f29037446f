#ifndef MODEL_TRAINING_PROGRESS_H_
#define MODEL_TRAINING_PROGRESS_H_

// Training progress for people: a bar redrawn in place on a terminal, and a
// plain line every few steps elsewhere (log files, CI), where carriage
// returns would only make noise.

#include <cstdio>
#include <string>

namespace unet {

struct ProgressSnapshot {
  int step = 0;
  int total_steps = 0;
  double loss = 0;               // smoothed
  double images_per_second = 0;  // since this run started
};

// "45s", "3m20s", "2h05m"; "?" when unknown (no speed yet).
std::string FormatDuration(double seconds);

// "[#######.............] 700/2000  loss 0.2515  4.80 img/s  ETA 4m31s";
// without the bar when `bar_width` is 0.
std::string ProgressLine(const ProgressSnapshot& snapshot, int bar_width);

class ProgressReporter {
 public:
  // `terminal`: redraw one line in place rather than print lines.
  ProgressReporter(std::FILE* out, bool terminal, int plain_every = 10);

  void Update(const ProgressSnapshot& snapshot);

  // A line that stays, printed above the bar (checkpoints, validation).
  void Message(const std::string& line);

 private:
  std::FILE* const out_;
  const bool terminal_;
  const int plain_every_;
  bool bar_shown_ = false;
};

}  // namespace unet

#endif  // MODEL_TRAINING_PROGRESS_H_
