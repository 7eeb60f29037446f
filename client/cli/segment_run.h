#ifndef CLIENT_CLI_SEGMENT_RUN_H_
#define CLIENT_CLI_SEGMENT_RUN_H_

// One `segment` run: every input sent to the server with a bounded number of
// requests in flight, so that the server can batch them, and each one's
// outputs written as its response arrives.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "client/cli/input_list.h"
#include "client/cli/output_files.h"
#include "client/cli/progress.h"
#include "segmentation/v1/segmentation.grpc.pb.h"

namespace unet::client {

struct RunOptions {
  std::filesystem::path output_dir;
  OutputKinds outputs;
  bool overwrite = false;  // redo inputs whose outputs all exist
  int jobs = 4;            // requests in flight
  std::string model;       // empty: the server's default
  int64_t model_version = 0;
  int deadline_ms = 60000;
  bool tile = false;                     // resize_mode OVERLAP_TILE
  bool tta = false;                      // test-time augmentation
  bool urgent = false;                   // priority URGENT
  std::vector<std::string> class_names;  // the model's, for overlays
};

// Returns the request for an input file's bytes.
segmentation::v1::SegmentRequest BuildRequest(std::string encoded_image,
                                              const std::string& request_id,
                                              const RunOptions& options);

// Segments every input, `options.jobs` at a time, and reports each outcome
// to `progress`. Neither an unreadable input nor a failed request stops the
// others.
void SegmentAll(segmentation::v1::Segmentation::StubInterface& stub,
                const std::vector<InputFile>& inputs, const RunOptions& options,
                ProgressReporter& progress);

}  // namespace unet::client

#endif  // CLIENT_CLI_SEGMENT_RUN_H_
