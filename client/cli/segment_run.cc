#include "client/cli/segment_run.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/dicom_magic.h"
#include "common/status_macros.h"

namespace unet::client {
namespace fs = std::filesystem;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;

SegmentRequest BuildRequest(std::string encoded_image,
                            const std::string& request_id,
                            const RunOptions& options) {
  SegmentRequest request;
  request.set_request_id(request_id);
  request.set_model(options.model);
  request.set_model_version(options.model_version);
  // A DICOM image is answered with a DICOM Segmentation, and only that.
  const bool dicom = IsDicomFile(encoded_image);
  request.set_mask_encoding(dicom ? segmentation::v1::DICOM_SEG
                                  : segmentation::v1::PNG);
  request.set_include_probabilities(options.outputs.probabilities && !dicom);
  request.set_resize_mode(options.tile ? SegmentRequest::OVERLAP_TILE
                                       : SegmentRequest::RETAIN_DIM);
  request.set_test_time_augmentation(options.tta);
  request.mutable_image()->set_encoded(std::move(encoded_image));
  request.set_priority(options.urgent ? SegmentRequest::URGENT
                                      : SegmentRequest::ROUTINE);
  return request;
}

namespace {

absl::StatusOr<std::string> ReadInput(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Whether the file at `path` is a DICOM Part 10 file (its first bytes).
bool StartsAsDicom(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::string head(kDicomMagicEnd, '\0');
  file.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(file.gcount()));
  return IsDicomFile(head);
}

// Segments one input; returns how long the request took, in ms.
absl::StatusOr<double> SegmentInput(
    segmentation::v1::Segmentation::StubInterface& stub, const InputFile& input,
    const OutputPaths& outputs, const RunOptions& options,
    int32_t* batch_size) {
  ASSIGN_OR_RETURN(std::string bytes, ReadInput(input.path));
  if (bytes.empty()) return absl::InvalidArgumentError("the file is empty");
  const SegmentRequest request =
      BuildRequest(std::move(bytes), input.path.filename().string(), options);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(options.deadline_ms));
  SegmentResponse response;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub.Segment(&context, request, &response);
  const double latency_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - start)
                                .count();
  if (!status.ok()) {
    // gRPC's codes are Abseil's.
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  *batch_size = response.timing().batch_size();
  RETURN_IF_ERROR(WriteOutputs(
      outputs, {request.image().encoded(), &response, options.class_names}));
  return latency_ms;
}

}  // namespace

void SegmentAll(segmentation::v1::Segmentation::StubInterface& stub,
                const std::vector<InputFile>& inputs, const RunOptions& options,
                ProgressReporter& progress) {
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t i; (i = next++) < inputs.size();) {
      const InputFile& input = inputs[i];
      const OutputPaths outputs =
          OutputPathsFor(options.output_dir, input.output_stem, options.outputs,
                         StartsAsDicom(input.path));
      if (!options.overwrite && AllOutputsExist(outputs)) {
        progress.Skipped(input.path);
        continue;
      }
      int32_t batch_size = 0;
      const absl::StatusOr<double> latency_ms =
          SegmentInput(stub, input, outputs, options, &batch_size);
      if (latency_ms.ok()) {
        progress.Succeeded(input.path, outputs.mask, *latency_ms, batch_size);
      } else {
        progress.Failed(input.path, latency_ms.status());
      }
    }
  };
  const int jobs =
      std::clamp<int>(options.jobs, 1, std::max<int>(1, inputs.size()));
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
}

}  // namespace unet::client
