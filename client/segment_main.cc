// segment: the command-line client. Segments image files, directories and
// lists of paths with a segmentation server, several requests in flight, and
// writes each mask (and, if asked, an overlay, a visible mask and the
// probabilities) under --output, mirroring the input tree.
//
//   segment --server HOST:PORT --output masks/ a.png images/ [-]
//   segment models | segment info [--model NAME]
//
// Exit codes: 0 every input done, 1 some failed, 2 usage errors.

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "client/cli/input_list.h"
#include "client/cli/progress.h"
#include "client/cli/segment_run.h"
#include "client/cli/server_info.h"
#include "client/connection.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051", "server address HOST:PORT");
ABSL_FLAG(std::string, output, "",
          "directory for the outputs (required to segment); the input tree "
          "is mirrored below it");
ABSL_FLAG(std::string, model, "", "model name (empty: the server's default)");
ABSL_FLAG(int64_t, model_version, 0, "model version (0: newest)");
ABSL_FLAG(int, deadline_ms, 60000, "deadline of each request");
ABSL_FLAG(int, jobs, 0,
          "requests in flight (0: enough to fill the server's batches, from "
          "its execution plan)");
ABSL_FLAG(std::string, glob, "",
          "comma-separated file-name patterns for files found in directories "
          "(empty: common image formats)");
ABSL_FLAG(bool, overwrite, false,
          "segment inputs whose outputs all exist (default: skip them, so "
          "that an interrupted run continues)");
ABSL_FLAG(bool, overlay, false,
          "also write <stem>_overlay.png: the mask in colour over the image, "
          "with a legend of the class names");
ABSL_FLAG(bool, visible, false,
          "also write <stem>_visible.png: the mask scaled to 0..255");
ABSL_FLAG(bool, probabilities, false,
          "also write <stem>_probabilities.tif: one 32-bit float page per "
          "class");
ABSL_FLAG(bool, tile, false, "use the overlap-tile strategy (OVERLAP_TILE)");
ABSL_FLAG(bool, tta, false, "ask for test-time augmentation");
ABSL_FLAG(bool, urgent, false, "send as URGENT (STAT): served first");

namespace {

namespace fs = std::filesystem;
using segmentation::v1::Segmentation;
using unet::client::RunOptions;

constexpr int kUsageError = 2;

grpc::ClientContext* WithDeadline(grpc::ClientContext* context, int ms) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(ms));
  return context;
}

void PrintError(const std::string& what, const grpc::Status& status) {
  std::cerr << "segment: " << what << ": "
            << absl::StatusCodeToString(
                   static_cast<absl::StatusCode>(status.error_code()))
            << ": " << status.error_message() << "\n";
}

segmentation::v1::GetModelInfoRequest InfoRequest() {
  segmentation::v1::GetModelInfoRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_model_version(absl::GetFlag(FLAGS_model_version));
  return request;
}

int PrintModels(Segmentation::Stub& stub) {
  grpc::ClientContext context;
  segmentation::v1::ListModelsResponse models;
  const grpc::Status status = stub.ListModels(
      WithDeadline(&context, absl::GetFlag(FLAGS_deadline_ms)), {}, &models);
  if (!status.ok()) {
    PrintError("ListModels", status);
    return 1;
  }
  std::cout << unet::client::FormatModelList(models);
  return 0;
}

int PrintInfo(Segmentation::Stub& stub) {
  grpc::ClientContext context;
  segmentation::v1::ModelInfo info;
  const grpc::Status status = stub.GetModelInfo(
      WithDeadline(&context, absl::GetFlag(FLAGS_deadline_ms)), InfoRequest(),
      &info);
  if (!status.ok()) {
    PrintError("GetModelInfo", status);
    return 1;
  }
  std::cout << unet::client::FormatModelInfo(info);
  return 0;
}

// Fills in what the run takes from the model: its class names, and unless
// --jobs says, enough requests in flight to fill every instance's batches
// twice over (one batch running, one waiting).
void DescribeModel(Segmentation::Stub& stub, RunOptions& options) {
  grpc::ClientContext context;
  segmentation::v1::ModelInfo info;
  const grpc::Status status = stub.GetModelInfo(
      WithDeadline(&context, std::min(absl::GetFlag(FLAGS_deadline_ms), 10000)),
      InfoRequest(), &info);
  if (!status.ok()) {
    // Each request will say what is wrong; the run goes on without names.
    PrintError("GetModelInfo", status);
  }
  options.class_names.assign(info.class_names().begin(),
                             info.class_names().end());
  if (options.jobs == 0) {
    const auto& plan = info.execution_plan();
    options.jobs =
        std::clamp<int>(2 * std::max(1u, plan.instances_per_device()) *
                            std::max(1u, plan.max_batch_size()),
                        4, 64);
  }
}

int Segment(Segmentation::Stub& stub, const std::vector<std::string>& inputs) {
  RunOptions options;
  options.output_dir = absl::GetFlag(FLAGS_output);
  options.outputs = {absl::GetFlag(FLAGS_overlay), absl::GetFlag(FLAGS_visible),
                     absl::GetFlag(FLAGS_probabilities)};
  options.overwrite = absl::GetFlag(FLAGS_overwrite);
  options.jobs = absl::GetFlag(FLAGS_jobs);
  options.model = absl::GetFlag(FLAGS_model);
  options.model_version = absl::GetFlag(FLAGS_model_version);
  options.deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  options.tile = absl::GetFlag(FLAGS_tile);
  options.tta = absl::GetFlag(FLAGS_tta);
  options.urgent = absl::GetFlag(FLAGS_urgent);
  if (options.output_dir.empty() || inputs.empty()) {
    std::cerr << "segment: need --output DIR and at least one input (a file, "
                 "a directory, or - for paths on stdin); see --help\n";
    return kUsageError;
  }
  if (options.jobs < 0 || options.deadline_ms <= 0) {
    std::cerr << "segment: --jobs must be >= 0 and --deadline_ms > 0\n";
    return kUsageError;
  }
  unet::client::InputListOptions list_options;
  list_options.output_dir = options.output_dir;
  if (const std::string globs = absl::GetFlag(FLAGS_glob); !globs.empty()) {
    std::vector<std::string> patterns =
        absl::StrSplit(globs, ',', absl::SkipEmpty());
    list_options.globs = std::move(patterns);
  }
  const unet::client::InputList list =
      unet::client::ListInputs(inputs, std::cin, list_options);
  DescribeModel(stub, options);

  unet::client::ProgressReporter progress(
      static_cast<int>(list.files.size() + list.errors.size()),
      /*bar=*/isatty(STDERR_FILENO) != 0, std::cout, std::cerr);
  for (const auto& error : list.errors) {
    progress.Failed(error.path, error.status);
  }
  unet::client::SegmentAll(stub, list.files, options, progress);
  const unet::client::RunSummary summary = progress.Finish();
  return summary.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Segments images with a segmentation server.\n"
      "usage: segment [--server HOST:PORT] --output DIR INPUT...\n"
      "         INPUT: an image file, a directory (recursive, --glob), or -\n"
      "         for one path per line on stdin\n"
      "       segment models    lists the server's models and versions\n"
      "       segment info      describes --model (default: the server's)");
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> inputs(args.begin() + 1, args.end());

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);  // masks of large images
  channel_args.SetMaxSendMessageSize(-1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel;
  const absl::StatusOr<unet::ConnectionOptions> connection =
      unet::ConnectionOptionsFromFlags();
  if (connection.ok()) {
    channel =
        unet::Connect(absl::GetFlag(FLAGS_server), *connection, channel_args);
  }
  if (!connection.ok() || !channel.ok()) {
    std::cerr
        << "segment: "
        << (connection.ok() ? channel.status() : connection.status()).message()
        << "\n";
    return 2;
  }
  const auto stub = Segmentation::NewStub(*channel);
  if (inputs.size() == 1 && inputs[0] == "models") return PrintModels(*stub);
  if (inputs.size() == 1 && inputs[0] == "info") return PrintInfo(*stub);
  return Segment(*stub, inputs);
}
