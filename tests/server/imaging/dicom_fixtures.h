#ifndef TESTS_SERVER_IMAGING_DICOM_FIXTURES_H_
#define TESTS_SERVER_IMAGING_DICOM_FIXTURES_H_

// Synthetic DICOM files for tests, made with DCMTK (no patient data).

#include <cstdint>
#include <string>
#include <vector>

namespace unet::testing {

enum class DicomEncoding {
  kExplicitLittle,
  kImplicitLittle,
  kDeflated,
  kRle,
  kJpegLsLossless,
  kJpegLossless,
  kJpegBaseline,  // lossy, 8 bits
  kJpeg2000,      // a JPEG 2000 header over bytes that are not: for refusals
};

struct DicomSpec {
  int rows = 8, columns = 8, frames = 1;
  int bits_allocated = 16;  // 8 or 16
  bool is_signed = false;
  std::string photometric = "MONOCHROME2";
  int samples = 1;
  double slope = 1, intercept = 0;
  DicomEncoding encoding = DicomEncoding::kExplicitLittle;
  // Patient geometry: frame of reference, position, orientation, spacing.
  bool geometry = false;
  // Stored values, frame after frame (rows * columns * frames of them);
  // written as 8- or 16-bit words.
  std::vector<int32_t> values;
};

// A one-frame 8-bit spec of `rows` x `columns` stored values, row by row.
DicomSpec EightBitSlice(int rows, int columns, const uint8_t* pixels);

// Returns the contents of `path` (empty when unreadable).
std::string ReadFileBytes(const std::string& path);

// Returns the bytes of a DICOM Part 10 file (CT Image Storage, one frame;
// Multi-frame Grayscale Word/Byte Secondary Capture with more).
std::string MakeDicom(const DicomSpec& spec);

}  // namespace unet::testing

#endif  // TESTS_SERVER_IMAGING_DICOM_FIXTURES_H_
