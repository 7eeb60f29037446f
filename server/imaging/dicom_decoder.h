#ifndef SERVER_IMAGING_DICOM_DECODER_H_
#define SERVER_IMAGING_DICOM_DECODER_H_

// Turns a DICOM Part 10 file into the intensities a model takes (DCMTK).
//
// Every byte may be hostile: the dimensions, samples, bit depth and
// transfer syntax are checked against the limits and the supported list
// before any pixel is decompressed. DCMTK's own logging is off: a DICOM
// header is patient data and nothing of it may reach a log.

#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "segmentation/v1/model_config.pb.h"
#include "server/imaging/image_decoder.h"

namespace unet {

// Whether `bytes` is a DICOM Part 10 file ("DICM" at offset 128).
bool IsDicomFile(absl::string_view bytes);

// Decodes every frame of `bytes` into a CV_32F matrix of intensities in
// [0, 1], mapped from the modality values as `mapping` says
// (model_config.proto, DicomInput). Transfer syntaxes: implicit and explicit
// little endian, explicit big endian, deflated, RLE, JPEG baseline,
// extended and lossless, JPEG-LS. INVALID_ARGUMENT for JPEG 2000 and any
// other syntax, colour images, more than 16 bits, a frame beyond `limits`
// or all frames together beyond limits.max_pixels, and undecodable bytes;
// RESOURCE_EXHAUSTED when memory runs out. Never throws.
absl::StatusOr<std::vector<cv::Mat>> DecodeDicom(
    absl::string_view bytes, const DecodeLimits& limits,
    const segmentation::v1::DicomInput& mapping);

}  // namespace unet

#endif  // SERVER_IMAGING_DICOM_DECODER_H_
