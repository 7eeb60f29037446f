#ifndef SERVER_IMAGING_DICOM_SEG_H_
#define SERVER_IMAGING_DICOM_SEG_H_

// Writes a model's masks of a DICOM image as a DICOM Segmentation (DCMTK's
// dcmseg): binary, one segment per class except one named "background",
// each coded from model.json (class_codings), algorithm AUTOMATIC with the
// model's name and version and the Artificial Intelligence family; patient,
// study and frame of reference from the source, a new series; each frame
// derived from its source frame, with its plane position when the source has
// one, and the source referenced as a common instance reference.

#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segmentation/v1/model_config.pb.h"
#include "server/imaging/dicom_source.h"

namespace unet {

struct SegmentationModel {
  std::string name;
  int64_t version = 0;
  const segmentation::v1::ModelConfig* config = nullptr;  // classes, codes
};

// Returns the Part 10 bytes of a DICOM Segmentation of `source` whose frame
// f is `masks[f]` (CV_8U, one class index per pixel, the source's size).
absl::StatusOr<std::string> WriteDicomSegmentation(
    const DicomSource& source, const std::vector<cv::Mat>& masks,
    const SegmentationModel& model);

}  // namespace unet

#endif  // SERVER_IMAGING_DICOM_SEG_H_
