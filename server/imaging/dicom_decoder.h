#ifndef SERVER_IMAGING_DICOM_DECODER_H_
#define SERVER_IMAGING_DICOM_DECODER_H_

// Turns a DICOM Part 10 file into the intensities a model takes (DCMTK).
//
// Every byte may be hostile: the dimensions, samples, bit depth and
// transfer syntax are checked against the limits and the supported list
// before any pixel is decompressed. DCMTK's own logging is off: a DICOM
// header is patient data and nothing of it may reach a log.

#include <memory>
#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/dicom_magic.h"
#include "segmentation/v1/model_config.pb.h"
#include "server/imaging/image_decoder.h"

namespace unet {

struct DicomSource;  // dicom_source.h

// A decoded DICOM file: each frame's intensities, and its header for the
// DICOM Segmentation that may answer it.
struct DicomImage {
  std::vector<cv::Mat> frames;  // CV_32F in [0, 1]
  std::shared_ptr<const DicomSource> source;
};

// Decodes every frame of `bytes` into a CV_32F matrix of intensities in
// [0, 1], mapped from the modality values as `mapping` says
// (model_config.proto, DicomInput). Transfer syntaxes: implicit and explicit
// little endian, explicit big endian, deflated, RLE, JPEG baseline,
// extended and lossless, JPEG-LS. INVALID_ARGUMENT for JPEG 2000 and any
// other syntax, colour images, more than 16 bits, a frame beyond `limits`
// or all frames together beyond limits.max_pixels, and undecodable bytes;
// RESOURCE_EXHAUSTED when memory runs out. Never throws.
absl::StatusOr<DicomImage> DecodeDicom(
    absl::string_view bytes, const DecodeLimits& limits,
    const segmentation::v1::DicomInput& mapping);

}  // namespace unet

#endif  // SERVER_IMAGING_DICOM_DECODER_H_
