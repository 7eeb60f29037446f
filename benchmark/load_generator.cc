// load_generator: drives a running segmentation server to measure how
// reliable it is. `flood` sends many maximum-size images at once and reports
// the server's memory; `soak` runs mixed traffic (valid, invalid, cancelled,
// short-deadline calls) with hot model reloads for a long time and reports
// wrong answers and memory growth.
//
// The server's memory is sampled from /proc/PID/status (--server_pid) every
// 20 ms, so run it on the server's machine. Start the server on a scratch
// copy of the model repository, so that the soak's reloads (which add and
// remove version directories) never touch the checkout:
//
//   rm -rf /tmp/load_models && cp -r model/repository /tmp/load_models
//   build/bin/segmentation_server --port 50999 --metrics_port 0 \
//       --model_root /tmp/load_models &
//   SERVER_PID=$!
//
// Flood: 200 simultaneous calls with a 4096x4096 PNG of zeros (also raw16,
// png_noise), repeated --rounds times:
//
//   build/bin/load_generator --mode flood --server localhost:50999 \
//       --server_pid $SERVER_PID --image_kind png_zeros --concurrency 200
//
// Soak: 30 minutes from 4 client loops, a new model version every minute:
//
//   build/bin/load_generator --mode soak --server localhost:50999 \
//       --server_pid $SERVER_PID --duration_s 1800 --reload_every_s 60 \
//       --reload_from model/repository/unet/3 --model_root /tmp/load_models
//
// The flood prints a row per round: status codes, latency of the OK calls,
// and the server's RSS before, at its peak (sampled until the settle wait
// ends), VmHWM, right after the last answer and after --settle_s. It allows
// OK, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED.
//
// The soak prints a progress line every --progress_every_s and a summary:
// valid requests must be OK (RESOURCE_EXHAUSTED counts as shed), bad inputs
// INVALID_ARGUMENT, cancelled calls OK or CANCELLED, 1 ms deadlines OK or
// DEADLINE_EXCEEDED; RSS growth compares the median after warm-up with the
// median at the end.
//
// Exit status: 0 when every call got a code its kind allows, 1 when not (the
// offending codes and messages are printed), 2 when it could not run.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

ABSL_FLAG(std::string, mode, "", "flood or soak");
ABSL_FLAG(std::string, server, "localhost:50051", "server address HOST:PORT");
ABSL_FLAG(int, server_pid, 0,
          "the server's process id, to sample its memory from /proc "
          "(0: no memory report)");
ABSL_FLAG(std::string, model, "", "model name (empty: the server's default)");
ABSL_FLAG(double, deadline_s, 120,
          "deadline of each call (soak: all but the short-deadline calls)");

ABSL_FLAG(int, concurrency, 200, "flood: calls in flight at once");
ABSL_FLAG(int, channels, 8, "flood: channels, each its own connection");
ABSL_FLAG(std::string, image_kind, "png_zeros",
          "flood: png_zeros, raw16 or png_noise");
ABSL_FLAG(int, side, 4096, "flood: image width and height");
ABSL_FLAG(int, rounds, 1, "flood: floods, one after the other");
ABSL_FLAG(double, settle_s, 5,
          "flood: wait after each round before reading the RSS once more");

ABSL_FLAG(double, duration_s, 1800, "soak: how long, in seconds");
ABSL_FLAG(int, clients, 4, "soak: concurrent client loops");
ABSL_FLAG(std::string, image, UNET_DEFAULT_IMAGE,
          "soak: the image whose crops make the valid requests");
ABSL_FLAG(double, reload_every_s, 60, "soak: hot reload period (0: none)");
ABSL_FLAG(std::string, reload_from, "",
          "soak: model version directory copied in as each new version "
          "(empty: no reloads)");
ABSL_FLAG(std::string, model_root, "",
          "soak: the server's --model_root; new versions go to "
          "MODEL_ROOT/<name of --reload_from's parent>/<next version>");
ABSL_FLAG(int, keep_versions, 2,
          "soak: newest versions kept in the model root; older ones are "
          "removed");
ABSL_FLAG(double, progress_every_s, 60, "soak: progress line period");
ABSL_FLAG(double, rss_window_s, 300,
          "soak: start RSS is the median over [W, 2W) seconds, end RSS the "
          "median over the last W (W shrinks to a third of short runs)");
ABSL_FLAG(uint32_t, seed, 1, "soak: random seed");

namespace unet {
namespace {

namespace fs = std::filesystem;
using segmentation::v1::RawImage;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

// The flood sends pre-serialised bytes through a generic stub, which needs
// the method's full name.
constexpr char kSegmentMethod[] = "/segmentation.v1.Segmentation/Segment";

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string FormatCodes(const std::map<grpc::StatusCode, int64_t>& codes) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : codes) {
    parts.push_back(absl::StrCat(CodeName(code), " ", count));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string FormatKb(int64_t kb) {
  return kb < 0 ? "n/a" : absl::StrFormat("%.1f MiB", kb / 1024.0);
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * (values.size() - 1) + 0.5)];
}

double Median(std::vector<double> values) { return Percentile(values, 0.5); }

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // masks and probabilities of big images
  args.SetMaxSendMessageSize(-1);
  // Channels with a shared subchannel pool would share one connection, and
  // with it the server's limit on concurrent HTTP/2 streams.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // TLS and token flags (client/connection.h); wrong ones end the run.
  static const absl::StatusOr<unet::ConnectionOptions> connection =
      unet::ConnectionOptionsFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      connection.ok() ? unet::Connect(address, *connection, args)
                      : connection.status();
  if (!channel.ok()) {
    std::cerr << "load_generator: " << channel.status().message() << "\n";
    std::exit(2);
  }
  return *std::move(channel);
}

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

// ---------------------------------------------------------------------------
// The server's memory.

struct ProcMemory {
  int64_t rss_kb = -1;
  int64_t hwm_kb = -1;
};

// Reads VmRSS and VmHWM from /proc/PID/status; nullopt once the process is
// gone (a zombie has no Vm* lines either).
std::optional<ProcMemory> ReadProcMemory(int pid) {
  std::ifstream file(absl::StrCat("/proc/", pid, "/status"));
  ProcMemory memory;
  std::string line;
  while (std::getline(file, line)) {
    int64_t* field = absl::StartsWith(line, "VmRSS:")   ? &memory.rss_kb
                     : absl::StartsWith(line, "VmHWM:") ? &memory.hwm_kb
                                                        : nullptr;
    if (field == nullptr) continue;
    const std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() < 2 || !absl::SimpleAtoi(words[1], field)) *field = -1;
  }
  if (memory.rss_kb < 0) return std::nullopt;
  return memory;
}

// Samples a process's VmRSS every 20 ms on its own thread. Times are seconds
// since construction. With pid 0 it watches nothing and reports -1.
class MemoryWatcher {
 public:
  explicit MemoryWatcher(int pid) : pid_(pid), start_(absl::Now()) {
    if (pid_ == 0) return;
    Sample();  // a baseline before anything is sent
    thread_ = std::thread([this] {
      while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
        if (!Sample()) return;
      }
    });
  }
  ~MemoryWatcher() {
    stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

  double Elapsed() const { return absl::ToDoubleSeconds(absl::Now() - start_); }

  int64_t LatestRssKb() const {
    absl::MutexLock lock(&mu_);
    return samples_.empty() ? -1 : samples_.back().second;
  }
  // VmHWM: the process's own peak, which also sees spikes between samples.
  int64_t HwmKb() const {
    absl::MutexLock lock(&mu_);
    return hwm_kb_;
  }
  // When the process vanished; -1 while it lives (or when not watching).
  double GoneAt() const {
    absl::MutexLock lock(&mu_);
    return gone_at_;
  }
  int64_t PeakRssKb(double from_s, double to_s) const {
    const std::vector<double> rss = Between(from_s, to_s);
    return rss.empty() ? -1
                       : static_cast<int64_t>(
                             *std::max_element(rss.begin(), rss.end()));
  }
  int64_t MedianRssKb(double from_s, double to_s) const {
    const std::vector<double> rss = Between(from_s, to_s);
    return rss.empty() ? -1 : static_cast<int64_t>(Median(rss));
  }

 private:
  // Returns false once the process is gone.
  bool Sample() {
    const std::optional<ProcMemory> memory = ReadProcMemory(pid_);
    const double now = Elapsed();
    absl::MutexLock lock(&mu_);
    if (!memory) {
      gone_at_ = now;
      return false;
    }
    samples_.emplace_back(now, memory->rss_kb);
    hwm_kb_ = memory->hwm_kb;
    return true;
  }

  std::vector<double> Between(double from_s, double to_s) const {
    absl::MutexLock lock(&mu_);
    std::vector<double> rss;
    for (const auto& [time, kb] : samples_) {
      if (time >= from_s && time <= to_s) rss.push_back(kb);
    }
    return rss;
  }

  const int pid_;
  const absl::Time start_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<double, int64_t>> samples_ ABSL_GUARDED_BY(mu_);
  int64_t hwm_kb_ ABSL_GUARDED_BY(mu_) = -1;
  double gone_at_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Notification stop_;
  std::thread thread_;
};

void ReportIfGone(const MemoryWatcher& memory) {
  if (memory.GoneAt() >= 0) {
    std::cout << absl::StrFormat(
        "SERVER PROCESS %d IS GONE (noticed at %.1f s)\n",
        absl::GetFlag(FLAGS_server_pid), memory.GoneAt());
  }
}

// ---------------------------------------------------------------------------
// Flood.

absl::StatusOr<SegmentRequest> FloodRequest(const std::string& kind, int side) {
  SegmentRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  if (kind == "raw16") {
    cv::Mat pixels(side, side, CV_16U);
    cv::randu(pixels, 0, 65536);
    RawImage* raw = request.mutable_image()->mutable_raw();
    raw->set_width(side);
    raw->set_height(side);
    raw->set_channels(1);
    raw->set_pixel_type(segmentation::v1::PIXEL_TYPE_UINT16);
    // The wire wants little-endian, as this machine's memory is.
    raw->set_data(pixels.data, pixels.total() * pixels.elemSize());
    return request;
  }
  cv::Mat pixels = cv::Mat::zeros(side, side, CV_8U);
  if (kind == "png_noise") {
    cv::randu(pixels, 0, 256);
  } else if (kind != "png_zeros") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --image_kind ", kind));
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", pixels, png)) {
    return absl::InternalError("cannot encode the flood image");
  }
  request.mutable_image()->set_encoded(png.data(), png.size());
  return request;
}

struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  double ms = 0;
};

// Starts `count` calls of `request` at once, spread over `stubs`, and
// returns when all have finished. The request is serialised once and shared:
// 200 copies of a 32 MiB image would cost the load generator 6 GiB.
std::vector<CallResult> Flood(
    const std::vector<std::unique_ptr<grpc::GenericStub>>& stubs,
    const grpc::ByteBuffer& request, int count, absl::Duration deadline) {
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    absl::Time start;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < count; ++i) calls.push_back(std::make_unique<Call>());
  std::vector<CallResult> results(count);
  absl::BlockingCounter pending(count);
  for (int i = 0; i < count; ++i) {
    Call& call = *calls[i];
    call.context.set_deadline(DeadlineAfter(deadline));
    call.start = absl::Now();
    stubs[i % stubs.size()]->UnaryCall(
        &call.context, kSegmentMethod, grpc::StubOptions(), &request,
        &call.response, [&call, &results, &pending, i](grpc::Status status) {
          results[i] = {status.error_code(), status.error_message(),
                        absl::ToDoubleMilliseconds(absl::Now() - call.start)};
          call.response.Clear();  // the masks are not looked at
          pending.DecrementCount();
        });
  }
  pending.Wait();
  return results;
}

bool FloodAllows(grpc::StatusCode code) {
  return code == grpc::StatusCode::OK ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// Calls answered with a code the flood does not allow, by code and message.
using Unexpected = std::map<std::pair<grpc::StatusCode, std::string>, int>;

struct RoundTally {
  std::map<grpc::StatusCode, int64_t> codes;
  std::vector<double> ok_ms;
};

RoundTally Tally(const std::vector<CallResult>& results,
                 Unexpected& unexpected) {
  RoundTally tally;
  for (const CallResult& result : results) {
    ++tally.codes[result.code];
    if (result.code == grpc::StatusCode::OK) tally.ok_ms.push_back(result.ms);
    if (!FloodAllows(result.code)) {
      ++unexpected[{result.code, result.message}];
    }
  }
  return tally;
}

void PrintUnexpected(const Unexpected& unexpected) {
  constexpr int kMaxLines = 20;
  std::cout << absl::StrFormat(
      "\ncodes other than OK, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED (at most "
      "%d messages):\n",
      kMaxLines);
  int lines = 0;
  for (const auto& [code_message, count] : unexpected) {
    if (++lines > kMaxLines) break;
    std::cout << absl::StrFormat("  %dx %s: %s\n", count,
                                 CodeName(code_message.first),
                                 code_message.second);
  }
}

std::vector<std::unique_ptr<grpc::GenericStub>> MakeGenericStubs(int channels) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < std::max(1, channels); ++i) {
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        MakeChannel(absl::GetFlag(FLAGS_server))));
  }
  return stubs;
}

absl::StatusOr<bool> RunFlood(const MemoryWatcher& memory) {
  const std::string kind = absl::GetFlag(FLAGS_image_kind);
  const int side = absl::GetFlag(FLAGS_side);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const absl::Duration deadline =
      absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  absl::StatusOr<SegmentRequest> request = FloodRequest(kind, side);
  if (!request.ok()) return request.status();
  const std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer buffer(&slice, 1);
  const std::vector<std::unique_ptr<grpc::GenericStub>> stubs =
      MakeGenericStubs(absl::GetFlag(FLAGS_channels));

  std::cout << absl::StrFormat(
      "flood: %d calls x %d round(s) over %d channels to %s; image %s "
      "%dx%d, %d bytes on the wire; deadline %s\n\n",
      concurrency, absl::GetFlag(FLAGS_rounds), stubs.size(),
      absl::GetFlag(FLAGS_server), kind, side, side, bytes.size(),
      absl::FormatDuration(deadline));
  const double settle_s = absl::GetFlag(FLAGS_settle_s);
  std::cout << absl::StrFormat(
      "| round | seconds | status codes | OK p50 ms | OK p99 ms | RSS before "
      "| peak RSS | VmHWM | RSS after | RSS after %g s |\n"
      "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
      settle_s);
  Unexpected unexpected;
  for (int round = 1; round <= absl::GetFlag(FLAGS_rounds); ++round) {
    const int64_t before = memory.LatestRssKb();
    const double start = memory.Elapsed();
    const std::vector<CallResult> results =
        Flood(stubs, buffer, concurrency, deadline);
    const double end = memory.Elapsed();
    const int64_t after = memory.LatestRssKb();
    absl::SleepFor(absl::Seconds(settle_s));
    // The peak includes the settle wait: the server may go on working on
    // calls whose deadline the client has already seen pass.
    const int64_t peak = memory.PeakRssKb(start, memory.Elapsed());

    const RoundTally tally = Tally(results, unexpected);
    std::cout << absl::StrFormat(
                     "| %d | %.1f | %s | %.0f | %.0f | %s | %s | %s | %s | %s "
                     "|",
                     round, end - start, FormatCodes(tally.codes),
                     Percentile(tally.ok_ms, 0.5),
                     Percentile(tally.ok_ms, 0.99), FormatKb(before),
                     FormatKb(peak), FormatKb(memory.HwmKb()), FormatKb(after),
                     FormatKb(memory.LatestRssKb()))
              << std::endl;
    if (memory.GoneAt() >= 0) break;
  }
  ReportIfGone(memory);
  if (unexpected.empty()) return memory.GoneAt() < 0;
  PrintUnexpected(unexpected);
  return false;
}

// ---------------------------------------------------------------------------
// Soak: what is sent.

enum class Kind { kValid, kBad, kCancelled, kShortDeadline };
constexpr int kKinds = 4;
constexpr std::array<const char*, kKinds> kKindNames = {
    "valid", "bad_input", "cancelled", "short_deadline"};
// How often each kind is sent, in the order above.
constexpr std::array<double, kKinds> kKindWeights = {70, 15, 8, 7};

struct Case {
  std::string name;
  SegmentRequest request;
  int width = 0, height = 0;  // of a valid image, to check the mask against
};

struct Cases {
  std::vector<Case> valid;  // also sent cancelled or with a short deadline
  std::vector<Case> bad;
};

std::string EncodePng(const cv::Mat& pixels) {
  std::vector<uchar> png;
  cv::imencode(".png", pixels, png);
  return std::string(png.begin(), png.end());
}

Case RawCase(std::string name, int width, int height, int channels,
             segmentation::v1::PixelType type, std::string data) {
  Case c{std::move(name), {}, width, height};
  RawImage* raw = c.request.mutable_image()->mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_channels(channels);
  raw->set_pixel_type(type);
  raw->set_data(std::move(data));
  return c;
}

std::vector<Case> ValidCases(const cv::Mat& image) {
  const std::vector<cv::Rect> crops = {{10, 20, 64, 64},
                                       {100, 50, 300, 200},
                                       {7, 3, 123, 77},
                                       {0, 0, image.cols, image.rows}};
  std::vector<Case> cases;
  for (const cv::Rect& crop : crops) {
    const cv::Mat pixels = image(crop & cv::Rect(0, 0, image.cols, image.rows))
                               .clone();  // clone: continuous rows
    const std::string size = absl::StrCat(pixels.cols, "x", pixels.rows);
    Case png{absl::StrCat("png ", size), {}, pixels.cols, pixels.rows};
    png.request.mutable_image()->set_encoded(EncodePng(pixels));
    cases.push_back(std::move(png));
    cases.push_back(
        RawCase(absl::StrCat("raw8 ", size), pixels.cols, pixels.rows, 1,
                segmentation::v1::PIXEL_TYPE_UINT8,
                std::string(reinterpret_cast<const char*>(pixels.data),
                            pixels.total())));
  }
  return cases;
}

std::vector<Case> BadCases(const cv::Mat& image, std::mt19937& rng) {
  std::vector<Case> cases;
  auto encoded = [&](std::string name, std::string bytes) {
    Case c{std::move(name)};
    c.request.mutable_image()->set_encoded(std::move(bytes));
    cases.push_back(std::move(c));
  };
  std::string garbage(4096, '\0');
  for (char& byte : garbage) byte = static_cast<char>(rng());
  garbage[0] = 0;  // no format's magic number
  encoded("garbage bytes", garbage);
  const std::string png = EncodePng(image);
  encoded("truncated png", png.substr(0, png.size() / 2));
  std::string huge = png;  // IHDR width and height, big-endian
  for (int at : {16, 20}) huge.replace(at, 4, std::string("\0\1\0\0", 4));
  encoded("png declaring 65536x65536", huge);
  encoded("empty encoded image", "");
  const std::string pixels(64 * 64, '\x80');
  cases.push_back(RawCase("raw wrong data length", 64, 64, 1,
                          segmentation::v1::PIXEL_TYPE_UINT8,
                          pixels.substr(1)));
  cases.push_back(RawCase("raw zero width", 0, 64, 1,
                          segmentation::v1::PIXEL_TYPE_UINT8, pixels));
  cases.push_back(RawCase("raw unknown pixel_type", 64, 64, 1,
                          static_cast<segmentation::v1::PixelType>(99),
                          pixels));
  cases.push_back(Case{"no image"});
  return cases;
}

absl::StatusOr<Cases> MakeCases(const std::string& image_path,
                                std::mt19937& rng) {
  const cv::Mat image = cv::imread(image_path, cv::IMREAD_GRAYSCALE);
  if (image.empty()) {
    return absl::NotFoundError(absl::StrCat("cannot read ", image_path));
  }
  Cases cases{ValidCases(image), BadCases(image, rng)};
  for (std::vector<Case>* list : {&cases.valid, &cases.bad}) {
    for (Case& c : *list) c.request.set_model(absl::GetFlag(FLAGS_model));
  }
  return cases;
}

// Varies the options of a valid request, so that every path is exercised.
void VaryOptions(SegmentRequest& request, std::mt19937& rng) {
  request.set_mask_encoding(rng() % 2 == 0 ? segmentation::v1::PNG
                                           : segmentation::v1::RAW);
  request.set_priority(rng() % 4 == 0 ? SegmentRequest::URGENT
                                      : SegmentRequest::ROUTINE);
  request.set_include_probabilities(rng() % 8 == 0);
}

// ---------------------------------------------------------------------------
// Soak: the calls and what their answers mean.

grpc::Status CallWithDeadline(Segmentation::Stub& stub,
                              const SegmentRequest& request,
                              absl::Duration deadline,
                              SegmentResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(deadline));
  return stub.Segment(&context, request, response);
}

grpc::Status CallAndCancel(Segmentation::Stub& stub,
                           const SegmentRequest& request,
                           absl::Duration deadline, absl::Duration cancel_after,
                           SegmentResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(deadline));
  absl::Notification done;
  grpc::Status result;
  stub.async()->Segment(&context, &request, response, [&](grpc::Status status) {
    result = std::move(status);
    done.Notify();
  });
  absl::SleepFor(cancel_after);
  context.TryCancel();
  done.WaitForNotification();  // the context must outlive the call
  return result;
}

// Why the mask of an OK answer to a valid request is wrong; empty when right.
std::string CheckResponse(const Case& c, const SegmentRequest& request,
                          const SegmentResponse& response) {
  const auto& mask = response.mask();
  if (static_cast<int>(mask.width()) != c.width ||
      static_cast<int>(mask.height()) != c.height) {
    return absl::StrFormat("mask is %dx%d, image %dx%d", mask.width(),
                           mask.height(), c.width, c.height);
  }
  if (mask.encoding() == segmentation::v1::RAW) {
    if (mask.data().size() != static_cast<size_t>(c.width) * c.height) {
      return absl::StrCat("raw mask has ", mask.data().size(), " bytes");
    }
  } else {
    const cv::Mat decoded =
        cv::imdecode(cv::Mat(1, static_cast<int>(mask.data().size()), CV_8U,
                             const_cast<char*>(mask.data().data())),
                     cv::IMREAD_UNCHANGED);
    if (decoded.cols != c.width || decoded.rows != c.height ||
        decoded.type() != CV_8UC1) {
      return "PNG mask does not decode to the image's size";
    }
  }
  if (request.include_probabilities()) {
    const auto& p = response.probabilities();
    const size_t expected =
        size_t{4} * p.num_classes() * static_cast<size_t>(c.width) * c.height;
    if (p.num_classes() == 0 || p.data().size() != expected) {
      return absl::StrCat("probabilities have ", p.data().size(), " bytes for ",
                          p.num_classes(), " classes");
    }
  }
  return "";
}

enum class Verdict { kExpected, kShed, kFailed };

Verdict Judge(Kind kind, grpc::StatusCode code) {
  using grpc::StatusCode;
  if (kind == Kind::kBad) {
    return code == StatusCode::INVALID_ARGUMENT ? Verdict::kExpected
                                                : Verdict::kFailed;
  }
  if (code == StatusCode::OK) return Verdict::kExpected;
  if (code == StatusCode::RESOURCE_EXHAUSTED) return Verdict::kShed;
  if (kind == Kind::kCancelled && code == StatusCode::CANCELLED) {
    return Verdict::kExpected;
  }
  if (kind == Kind::kShortDeadline && code == StatusCode::DEADLINE_EXCEEDED) {
    return Verdict::kExpected;
  }
  return Verdict::kFailed;
}

// Counts of the soak's answers, shared by the client loops.
class SoakStats {
 public:
  void Record(Kind kind, const std::string& case_name,
              const grpc::Status& status, Verdict verdict,
              const std::string& why) {
    const int k = static_cast<int>(kind);
    absl::MutexLock lock(&mu_);
    ++codes_[k][status.error_code()];
    if (verdict == Verdict::kShed) ++shed_[k];
    if (verdict != Verdict::kFailed) return;
    ++failed_[k];
    // Grouped by what went wrong, naming the inputs it happened to; the
    // groups are capped, the counts above stay exact.
    const std::string key =
        absl::StrCat(kKindNames[k], ": ", CodeName(status.error_code()), ": ",
                     why.empty() ? status.error_message() : why);
    auto group = failures_.find(key);
    if (group == failures_.end()) {
      if (failures_.size() >= kMaxFailureGroups) return;
      group = failures_.emplace(key, Failure{}).first;
    }
    ++group->second.count;
    group->second.cases.insert(case_name);
  }
  void RecordVersion(int64_t version) {
    absl::MutexLock lock(&mu_);
    versions_.insert(version);
  }

  int64_t Failed() const {
    absl::MutexLock lock(&mu_);
    int64_t total = 0;
    for (int64_t n : failed_) total += n;
    return total;
  }
  std::string ProgressCounts() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> parts;
    int64_t failed = 0, shed = 0;
    for (int k = 0; k < kKinds; ++k) {
      int64_t requests = 0;
      for (const auto& [code, count] : codes_[k]) requests += count;
      parts.push_back(absl::StrCat(kKindNames[k], " ", requests));
      failed += failed_[k];
      shed += shed_[k];
    }
    return absl::StrFormat(
        "%s | failed %d, shed %d | newest version %s",
        absl::StrJoin(parts, ", "), failed, shed,
        versions_.empty() ? "-" : absl::StrCat(*versions_.rbegin()));
  }
  void PrintTable() const {
    absl::MutexLock lock(&mu_);
    std::cout << "| class | requests | status codes | failed | shed |\n"
                 "|---|---:|---|---:|---:|\n";
    for (int k = 0; k < kKinds; ++k) {
      int64_t requests = 0;
      for (const auto& [code, count] : codes_[k]) requests += count;
      std::cout << absl::StrFormat(
          "| %s | %d | %s | %d | %d |\n", kKindNames[k], requests,
          FormatCodes(codes_[k]), failed_[k], shed_[k]);
    }
    if (!versions_.empty()) {
      std::cout << absl::StrFormat(
          "versions that answered valid requests: %s\n",
          absl::StrJoin(versions_, ","));
    }
  }
  void PrintFailures() const {
    absl::MutexLock lock(&mu_);
    if (failures_.empty()) return;
    std::cout << absl::StrFormat("\nfailures (at most %d kinds):\n",
                                 kMaxFailureGroups);
    for (const auto& [key, failure] : failures_) {
      std::cout << absl::StrFormat("  %dx %s\n      inputs: %s\n",
                                   failure.count, key,
                                   absl::StrJoin(failure.cases, ", "));
    }
  }

 private:
  struct Failure {
    int64_t count = 0;
    std::set<std::string> cases;
  };
  static constexpr size_t kMaxFailureGroups = 30;
  mutable absl::Mutex mu_;
  std::array<std::map<grpc::StatusCode, int64_t>, kKinds> codes_
      ABSL_GUARDED_BY(mu_);
  std::array<int64_t, kKinds> failed_ ABSL_GUARDED_BY(mu_) = {};
  std::array<int64_t, kKinds> shed_ ABSL_GUARDED_BY(mu_) = {};
  std::map<std::string, Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> versions_ ABSL_GUARDED_BY(mu_);
};

// One client: sends random cases, one at a time, until `end` or `stop`.
void ClientLoop(const Cases& cases, uint32_t seed, absl::Time end,
                const absl::Notification& stop, SoakStats& stats) {
  const auto stub =
      Segmentation::NewStub(MakeChannel(absl::GetFlag(FLAGS_server)));
  const absl::Duration deadline =
      absl::Seconds(absl::GetFlag(FLAGS_deadline_s));
  std::mt19937 rng(seed);
  std::discrete_distribution<int> pick_kind(kKindWeights.begin(),
                                            kKindWeights.end());
  std::uniform_int_distribution<int> cancel_ms(1, 20);
  while (absl::Now() < end && !stop.HasBeenNotified()) {
    const Kind kind = static_cast<Kind>(pick_kind(rng));
    const std::vector<Case>& list =
        kind == Kind::kBad ? cases.bad : cases.valid;
    const Case& c = list[rng() % list.size()];
    SegmentRequest request = c.request;
    if (kind != Kind::kBad) VaryOptions(request, rng);
    SegmentResponse response;
    grpc::Status status;
    switch (kind) {
      case Kind::kValid:
      case Kind::kBad:
        status = CallWithDeadline(*stub, request, deadline, &response);
        break;
      case Kind::kShortDeadline:
        status =
            CallWithDeadline(*stub, request, absl::Milliseconds(1), &response);
        break;
      case Kind::kCancelled:
        status = CallAndCancel(*stub, request, deadline,
                               absl::Milliseconds(cancel_ms(rng)), &response);
        break;
    }
    Verdict verdict = Judge(kind, status.error_code());
    std::string why;
    if (status.ok() && kind != Kind::kBad) {
      why = CheckResponse(c, request, response);
      if (!why.empty()) verdict = Verdict::kFailed;
      if (kind == Kind::kValid) stats.RecordVersion(response.model_version());
    }
    stats.Record(kind, c.name, status, verdict, why);
  }
}

// ---------------------------------------------------------------------------
// Soak: hot reloads.

// Publishes copies of one model version as new versions the way a deployment
// should: copy under a name the server ignores (not a positive integer), then
// rename into place, so that the server never sees half a version. Removes
// the oldest versions, so that the root does not grow without bound.
class Reloader {
 public:
  Reloader(fs::path from, fs::path model_dir, int keep)
      : from_(std::move(from)), model_dir_(std::move(model_dir)), keep_(keep) {}

  absl::StatusOr<int64_t> PublishNext() {
    std::vector<int64_t> versions = Versions();
    const int64_t next = versions.empty() ? 1 : versions.back() + 1;
    const fs::path temporary = model_dir_ / absl::StrCat(".tmp-", next);
    std::error_code error;
    fs::remove_all(temporary, error);
    fs::copy(from_, temporary, fs::copy_options::recursive, error);
    if (!error) fs::rename(temporary, model_dir_ / absl::StrCat(next), error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("cannot publish version ", next, ": ", error.message()));
    }
    versions.push_back(next);
    // Out of the server's sight first, as with publishing: a version that
    // lost its model.pt but not its model.json would be one that fails.
    for (size_t i = 0; i + keep_ < versions.size(); ++i) {
      const fs::path doomed =
          model_dir_ / absl::StrCat(".tmp-rm-", versions[i]);
      fs::rename(model_dir_ / absl::StrCat(versions[i]), doomed, error);
      if (!error) fs::remove_all(doomed, error);
      if (error) {
        return absl::InternalError(absl::StrCat(
            "cannot remove version ", versions[i], ": ", error.message()));
      }
    }
    return next;
  }

 private:
  std::vector<int64_t> Versions() const {
    std::vector<int64_t> versions;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(model_dir_, error)) {
      int64_t version = 0;
      if (absl::SimpleAtoi(entry.path().filename().string(), &version) &&
          version > 0) {
        versions.push_back(version);
      }
    }
    std::sort(versions.begin(), versions.end());
    return versions;
  }

  const fs::path from_, model_dir_;
  const size_t keep_;
};

// The reloader, or none without --reload_from. Refuses a model root that
// holds --reload_from: pruning would delete the very version it copies.
absl::StatusOr<std::unique_ptr<Reloader>> MakeReloader() {
  const std::string from_flag = absl::GetFlag(FLAGS_reload_from);
  if (from_flag.empty() || absl::GetFlag(FLAGS_reload_every_s) <= 0) {
    return nullptr;
  }
  std::error_code error;
  const fs::path from = fs::canonical(from_flag, error);
  const fs::path root = fs::canonical(absl::GetFlag(FLAGS_model_root), error);
  if (error || absl::GetFlag(FLAGS_model_root).empty()) {
    return absl::InvalidArgumentError(
        "--reload_from needs --model_root, the server's model root");
  }
  if (absl::StartsWith(from.string() + "/", root.string() + "/")) {
    return absl::InvalidArgumentError(
        "--reload_from lies inside --model_root; serve a copy of the "
        "repository instead");
  }
  const fs::path model_dir = root / from.parent_path().filename();
  if (!fs::is_directory(model_dir, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir.string(), " is not a directory"));
  }
  return std::make_unique<Reloader>(
      from, model_dir, std::max(1, absl::GetFlag(FLAGS_keep_versions)));
}

// ---------------------------------------------------------------------------
// Soak: the run.

// The server's RSS after warm-up against its RSS at the end of the soak,
// each the median of a window, so that one busy moment does not decide.
void PrintRssGrowth(const MemoryWatcher& memory, double start_s, double end_s) {
  const double window =
      std::min(absl::GetFlag(FLAGS_rss_window_s), (end_s - start_s) / 3);
  const int64_t rss_start =
      memory.MedianRssKb(start_s + window, start_s + 2 * window);
  const int64_t rss_end = memory.MedianRssKb(end_s - window, end_s);
  std::cout << absl::StrFormat(
      "RSS: start %s (median over %.0f-%.0f s), end %s (median over the last "
      "%.0f s), growth %s; peak %s, VmHWM %s\n",
      FormatKb(rss_start), window, 2 * window, FormatKb(rss_end), window,
      rss_start > 0 && rss_end > 0
          ? absl::StrFormat("%+.1f%%",
                            100.0 * (rss_end - rss_start) / rss_start)
          : "n/a",
      FormatKb(memory.PeakRssKb(start_s, end_s)), FormatKb(memory.HwmKb()));
}

absl::StatusOr<bool> RunSoak(const MemoryWatcher& memory) {
  std::mt19937 rng(absl::GetFlag(FLAGS_seed));
  absl::StatusOr<Cases> cases = MakeCases(absl::GetFlag(FLAGS_image), rng);
  if (!cases.ok()) return cases.status();
  absl::StatusOr<std::unique_ptr<Reloader>> reloader = MakeReloader();
  if (!reloader.ok()) return reloader.status();
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  const int clients = absl::GetFlag(FLAGS_clients);
  const absl::Duration reload_every =
      absl::Seconds(absl::GetFlag(FLAGS_reload_every_s));
  const absl::Duration progress_every =
      absl::Seconds(absl::GetFlag(FLAGS_progress_every_s));
  std::cout << absl::StrFormat(
                   "soak: %g s, %d clients to %s; %d valid and %d bad cases; "
                   "reloads %s\n",
                   duration_s, clients, absl::GetFlag(FLAGS_server),
                   cases->valid.size(), cases->bad.size(),
                   *reloader == nullptr
                       ? "off"
                       : absl::StrCat("every ",
                                      absl::FormatDuration(reload_every)))
            << std::endl;

  SoakStats stats;
  absl::Notification stop;
  const double start_s = memory.Elapsed();
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(duration_s);
  std::vector<std::thread> loops;
  for (int i = 0; i < clients; ++i) {
    loops.emplace_back([&, i] {
      ClientLoop(*cases, absl::GetFlag(FLAGS_seed) + 1 + i, end, stop, stats);
    });
  }
  int reloads = 0, reload_errors = 0;
  absl::Time next_reload = start + reload_every;
  absl::Time next_progress = start + progress_every;
  while (absl::Now() < end) {
    absl::SleepFor(std::min(absl::Seconds(1), end - absl::Now()));
    if (memory.GoneAt() >= 0) break;
    const absl::Time now = absl::Now();
    if (*reloader != nullptr && now >= next_reload) {
      next_reload += reload_every;
      const absl::StatusOr<int64_t> version = (*reloader)->PublishNext();
      if (version.ok()) {
        ++reloads;
      } else {
        ++reload_errors;
        std::cout << "reload failed: " << version.status() << std::endl;
      }
    }
    if (now >= next_progress) {
      next_progress += progress_every;
      std::cout << absl::StrFormat("[%5.0f s] %s | RSS %s | reloads %d",
                                   absl::ToDoubleSeconds(now - start),
                                   stats.ProgressCounts(),
                                   FormatKb(memory.LatestRssKb()), reloads)
                << std::endl;
    }
  }
  stop.Notify();
  for (std::thread& loop : loops) loop.join();
  const double end_s = memory.Elapsed();

  std::cout << absl::StrFormat("\nsoak summary after %.0f s\n\n",
                               end_s - start_s);
  stats.PrintTable();
  std::cout << absl::StrFormat("reloads: %d done, %d failed\n", reloads,
                               reload_errors);
  PrintRssGrowth(memory, start_s, end_s);
  ReportIfGone(memory);
  stats.PrintFailures();
  return stats.Failed() == 0 && reload_errors == 0 && memory.GoneAt() < 0;
}

}  // namespace
}  // namespace unet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Loads a running segmentation server and watches its memory.\n"
      "usage: load_generator --mode flood|soak --server HOST:PORT "
      "[--server_pid PID] ...");
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "flood" && mode != "soak") {
    std::cerr << "load_generator: --mode must be flood or soak\n";
    return 2;
  }
  const unet::MemoryWatcher memory(absl::GetFlag(FLAGS_server_pid));
  if (absl::GetFlag(FLAGS_server_pid) != 0 && memory.GoneAt() >= 0) {
    std::cerr << "load_generator: cannot read /proc/"
              << absl::GetFlag(FLAGS_server_pid) << "/status\n";
    return 2;
  }
  const absl::StatusOr<bool> passed =
      mode == "flood" ? unet::RunFlood(memory) : unet::RunSoak(memory);
  if (!passed.ok()) {
    std::cerr << "load_generator: " << passed.status() << "\n";
    return 2;
  }
  return *passed ? 0 : 1;
}
