#include "benchmark/level_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

namespace unet {
namespace {

using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

// One measured call.
struct Call {
  int window = 0;
  double ms = 0;
  segmentation::v1::Timing timing;
};

// What the callers and the controlling thread share.
class Callers {
 public:
  explicit Callers(int concurrency) : since_resume_(concurrency, 0) {}

  // A caller: returns false when the level is over, else marks a call in
  // flight and returns true once the callers are not paused.
  bool StartCall() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Callers* c) { return c->stop_ || !c->paused_; }, this));
    if (stop_) return false;
    ++in_flight_;
    return true;
  }

  // A caller's call ended; returns the window it ended in (-1: none).
  int EndCall(int caller) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    ++since_resume_[caller];
    return window_;
  }

  // A caller gave up (no channel): warm-ups do not wait for it.
  void Leave(int caller) {
    absl::MutexLock lock(&mu_);
    since_resume_[caller] = kLeft;
  }

  // Lets calls start again; returns once every caller has finished one.
  void ResumeAndWarmUp() {
    absl::MutexLock lock(&mu_);
    for (int& calls : since_resume_) {
      if (calls != kLeft) calls = 0;
    }
    paused_ = false;
    mu_.Await(absl::Condition(
        +[](Callers* c) {
          return std::all_of(c->since_resume_.begin(), c->since_resume_.end(),
                             [](int calls) { return calls > 0; });
        },
        this));
  }

  // Calls ending from now on count for `window` (-1: for none).
  void SetWindow(int window) {
    absl::MutexLock lock(&mu_);
    window_ = window;
  }

  // Stops new calls and returns once none is in flight.
  void PauseAndDrain() {
    absl::MutexLock lock(&mu_);
    paused_ = true;
    mu_.Await(absl::Condition(
        +[](Callers* c) { return c->in_flight_ == 0; }, this));
  }

  // Ends the level: paused callers wake and return.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }

 private:
  static constexpr int kLeft = 1 << 30;

  absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int window_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<int> since_resume_ ABSL_GUARDED_BY(mu_);
};

double MedianOf(const std::vector<Call>& calls,
                double (*value)(const segmentation::v1::Timing&)) {
  std::vector<double> values;
  for (const Call& call : calls) values.push_back(value(call.timing));
  return Percentile(std::move(values), 0.5);
}

LevelResult Summarize(const std::vector<std::vector<Call>>& by_caller,
                      const std::vector<double>& window_seconds, int failed) {
  LevelResult result;
  result.concurrency = static_cast<int>(by_caller.size());
  result.failed = failed;
  std::vector<Call> all;
  for (const auto& calls : by_caller) {
    all.insert(all.end(), calls.begin(), calls.end());
  }
  std::vector<double> ms;
  double batch_sum = 0, tile_batch_sum = 0;
  for (const Call& call : all) {
    ms.push_back(call.ms);
    batch_sum += call.timing.batch_size();
    tile_batch_sum += call.timing.mean_tile_batch_size();
  }
  result.completed = static_cast<int>(all.size());
  result.p50_ms = Percentile(ms, 0.50);
  result.p95_ms = Percentile(ms, 0.95);
  result.p99_ms = Percentile(ms, 0.99);
  if (!all.empty()) {
    result.mean_batch = batch_sum / all.size();
    result.mean_tile_batch = tile_batch_sum / all.size();
  }
  result.queue_ms = MedianOf(all, [](const auto& t) {
    return static_cast<double>(t.queue_us()) / 1000;
  });
  result.preprocess_ms = MedianOf(all, [](const auto& t) {
    return static_cast<double>(t.preprocess_us()) / 1000;
  });
  result.inference_ms = MedianOf(all, [](const auto& t) {
    return static_cast<double>(t.inference_us()) / 1000;
  });
  result.postprocess_ms = MedianOf(all, [](const auto& t) {
    return static_cast<double>(t.postprocess_us()) / 1000;
  });
  for (size_t w = 0; w < window_seconds.size(); ++w) {
    WindowResult window;
    window.seconds = window_seconds[w];
    result.seconds += window.seconds;
    std::vector<double> window_ms;
    for (const Call& call : all) {
      if (call.window == static_cast<int>(w)) window_ms.push_back(call.ms);
    }
    window.completed = static_cast<int>(window_ms.size());
    window.p50_ms = Percentile(std::move(window_ms), 0.5);
    result.windows.push_back(window);
  }
  return result;
}

}  // namespace

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t at = static_cast<size_t>(q * (values.size() - 1) + 0.5);
  return values[at];
}

absl::StatusOr<LevelResult> RunLevel(const Target& target,
                                     const SegmentRequest& request,
                                     const LevelOptions& options) {
  const int concurrency = std::max(options.concurrency, 1);
  const int windows = std::max(options.windows, 1);
  Callers callers(concurrency);
  std::vector<std::vector<Call>> calls(concurrency);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments arguments;
      arguments.SetMaxReceiveMessageSize(-1);  // masks of tiled images
      arguments.SetMaxSendMessageSize(-1);
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          Connect(target.address, target.connection, arguments);
      if (!channel.ok()) {
        ++failed;
        callers.Leave(c);
        return;
      }
      auto stub = Segmentation::NewStub(*channel);
      while (callers.StartCall()) {
        grpc::ClientContext context;
        SegmentResponse response;
        const auto begin = std::chrono::steady_clock::now();
        const grpc::Status status = stub->Segment(&context, request, &response);
        const double ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - begin)
                              .count();
        const int window = callers.EndCall(c);
        if (window < 0) continue;  // warming up, or between windows
        if (!status.ok()) {
          ++failed;
          continue;
        }
        calls[c].push_back({window, ms, response.timing()});
      }
    });
  }
  // The first warm-up lets each caller connect and the server settle.
  absl::SleepFor(absl::Seconds(std::min(5.0, options.seconds / 4)));
  absl::Status status;
  std::vector<double> window_seconds;
  const absl::Duration slice = absl::Seconds(options.seconds / windows);
  for (int w = 0; w < windows && status.ok(); ++w) {
    if (options.between) {
      callers.PauseAndDrain();
      status = options.between(w);
      if (!status.ok()) break;
      callers.ResumeAndWarmUp();
    }
    callers.SetWindow(w);
    const absl::Time start = absl::Now();
    absl::SleepFor(slice);
    callers.SetWindow(-1);
    window_seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (options.between && status.ok()) {
    callers.PauseAndDrain();
    status = options.between(windows);
  }
  callers.Stop();
  for (std::thread& thread : threads) thread.join();
  if (!status.ok()) return status;
  return Summarize(calls, window_seconds, failed);
}

}  // namespace unet
