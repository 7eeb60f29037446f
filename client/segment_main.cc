// segment: the command-line client. Sends each input image to a segmentation
// server and writes DIR/<stem>_mask.png.
//
//   segment --server localhost:50051 --output masks/ a.png b.tif

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051", "server address HOST:PORT");
ABSL_FLAG(std::string, output, "", "directory for the masks (required)");
ABSL_FLAG(std::string, model, "", "model name (empty: the server's default)");
ABSL_FLAG(int64_t, model_version, 0, "model version (0: newest)");
ABSL_FLAG(int, deadline_ms, 60000, "deadline of each request");

namespace {

namespace fs = std::filesystem;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Segments one file and writes its mask; returns a one-line summary.
absl::StatusOr<std::string> SegmentFile(Segmentation::Stub& stub,
                                        const fs::path& input,
                                        const fs::path& output_dir) {
  absl::StatusOr<std::string> bytes = ReadFile(input);
  if (!bytes.ok()) return bytes.status();
  SegmentRequest request;
  request.set_request_id(input.filename().string());
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_model_version(absl::GetFlag(FLAGS_model_version));
  request.mutable_image()->set_encoded(*std::move(bytes));

  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
  SegmentResponse response;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub.Segment(&context, request, &response);
  const double total_ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  const fs::path mask_path =
      output_dir / absl::StrCat(input.stem().string(), "_mask.png");
  std::ofstream mask(mask_path, std::ios::binary);
  mask << response.mask().data();
  if (!mask.flush()) {
    return absl::InternalError(
        absl::StrCat("cannot write ", mask_path.string()));
  }
  const auto& t = response.timing();
  return absl::StrFormat(
      "%s -> %s  %dx%d  model %s v%d  total %.1f ms (queue %.1f, preprocess "
      "%.1f, inference %.1f, postprocess %.1f ms; batch %d)",
      input.string(), mask_path.string(), response.mask().width(),
      response.mask().height(), response.model(), response.model_version(),
      total_ms, t.queue_us() / 1e3, t.preprocess_us() / 1e3,
      t.inference_us() / 1e3, t.postprocess_us() / 1e3, t.batch_size());
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Segments images with a segmentation server.\n"
      "usage: segment --server HOST:PORT --output DIR INPUT...");
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::vector<fs::path> inputs(args.begin() + 1, args.end());
  const fs::path output_dir = absl::GetFlag(FLAGS_output);
  if (output_dir.empty() || inputs.empty()) {
    std::cerr << "segment: need --output DIR and at least one input image\n";
    return 2;
  }
  std::error_code error;
  fs::create_directories(output_dir, error);
  if (error) {
    std::cerr << "segment: cannot create " << output_dir << ": "
              << error.message() << "\n";
    return 1;
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);  // masks of large images
  channel_args.SetMaxSendMessageSize(-1);
  const auto stub = Segmentation::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(),
      channel_args));
  int failures = 0;
  for (const fs::path& input : inputs) {
    const absl::StatusOr<std::string> summary =
        SegmentFile(*stub, input, output_dir);
    if (summary.ok()) {
      std::cout << *summary << "\n";
    } else {
      ++failures;
      std::cerr << "segment: " << input.string() << ": "
                << absl::StatusCodeToString(summary.status().code()) << ": "
                << summary.status().message() << "\n";
    }
  }
  return failures == 0 ? 0 : 1;
}
