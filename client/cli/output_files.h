#ifndef CLIENT_CLI_OUTPUT_FILES_H_
#define CLIENT_CLI_OUTPUT_FILES_H_

// The files `segment` writes for one input, and writing them from the
// server's response.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "segmentation/v1/segmentation.pb.h"

namespace unet::client {

// Which outputs to write besides the class-index mask.
struct OutputKinds {
  bool overlay = false;
  bool visible = false;
  bool probabilities = false;
};

// The paths of one input's outputs; those not asked for are empty.
struct OutputPaths {
  // <stem>_mask.png: class indices; <stem>_seg.dcm for a DICOM input
  std::filesystem::path mask;
  std::filesystem::path overlay;        // <stem>_overlay.png
  std::filesystem::path visible;        // <stem>_visible.png
  std::filesystem::path probabilities;  // <stem>_probabilities.tif

  // Returns every non-empty path.
  std::vector<std::filesystem::path> All() const;
};

// Returns the outputs of the input whose outputs go to `output_stem`
// (InputFile::output_stem) below `output_dir`. A DICOM input is answered
// with a DICOM Segmentation alone: `mask` is then <stem>_seg.dcm.
OutputPaths OutputPathsFor(const std::filesystem::path& output_dir,
                           const std::filesystem::path& output_stem,
                           const OutputKinds& kinds, bool dicom_input = false);

// Returns whether every output in `paths` is already there (a resumed run
// skips the input).
bool AllOutputsExist(const OutputPaths& paths);

// What the outputs are drawn from.
struct SegmentedImage {
  std::string_view input;  // the input file's bytes (for the overlay)
  const segmentation::v1::SegmentResponse* response;  // with a PNG mask
  std::vector<std::string> class_names;  // the model's, for the legend
};

// Writes each output in `paths` atomically, the mask last, so that a run
// stopped half-way redoes the image.
absl::Status WriteOutputs(const OutputPaths& paths,
                          const SegmentedImage& image);

// Writes per-class probability maps as one 32-bit float TIFF page each.
absl::Status WriteProbabilitiesTiff(
    const std::filesystem::path& path,
    const segmentation::v1::Probabilities& probabilities);

}  // namespace unet::client

#endif  // CLIENT_CLI_OUTPUT_FILES_H_
