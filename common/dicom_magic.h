#ifndef COMMON_DICOM_MAGIC_H_
#define COMMON_DICOM_MAGIC_H_

// How a DICOM Part 10 file is told: "DICM" after its 128-byte preamble.
// Shared by the server's decoder and the CLI, which answers DICOM inputs
// with DICOM Segmentations.

#include "absl/strings/string_view.h"

namespace unet {

inline constexpr size_t kDicomMagicEnd = 132;

inline bool IsDicomFile(absl::string_view bytes) {
  return bytes.size() >= kDicomMagicEnd && bytes.substr(128, 4) == "DICM";
}

}  // namespace unet

#endif  // COMMON_DICOM_MAGIC_H_
