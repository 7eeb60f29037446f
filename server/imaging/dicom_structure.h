#ifndef SERVER_IMAGING_DICOM_STRUCTURE_H_
#define SERVER_IMAGING_DICOM_STRUCTURE_H_

// DCMTK allocates, for each element it reads, the length its header
// declares, before finding that the bytes are not there: a 200-byte file
// may make it ask for 4 GB (found by tests/fuzz/dicom_decoder_fuzzer).
// dicom_decoder.cc has DCMTK skip long values instead, which it cannot do
// inside a deflated dataset: for those, this walks every element header
// first, items and sequences included, and checks that each declared
// length fits in the bytes that hold it.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace unet {

// OK when every element, item and fragment of `bytes` (a Part 10 file:
// preamble, "DICM", meta group, dataset) fits in its container; sequences
// may nest at most 16 deep. A deflated dataset is inflated (up to
// `max_inflated_bytes`) and walked. INVALID_ARGUMENT names the first
// element that does not fit, by tag only.
absl::Status CheckDicomStructure(absl::string_view bytes,
                                 size_t max_inflated_bytes);

}  // namespace unet

#endif  // SERVER_IMAGING_DICOM_STRUCTURE_H_
