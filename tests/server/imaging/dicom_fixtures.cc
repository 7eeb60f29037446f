#include "tests/server/imaging/dicom_fixtures.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/oflog/oflog.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace unet::testing {
namespace {

void RegisterEncoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
  });
}

E_TransferSyntax SyntaxOf(DicomEncoding encoding) {
  switch (encoding) {
    case DicomEncoding::kExplicitLittle:
      return EXS_LittleEndianExplicit;
    case DicomEncoding::kImplicitLittle:
      return EXS_LittleEndianImplicit;
    case DicomEncoding::kDeflated:
      return EXS_DeflatedLittleEndianExplicit;
    case DicomEncoding::kRle:
      return EXS_RLELossless;
    case DicomEncoding::kJpegLsLossless:
      return EXS_JPEGLSLossless;
    case DicomEncoding::kJpegLossless:
      return EXS_JPEGProcess14SV1;
    case DicomEncoding::kJpegBaseline:
      return EXS_JPEGProcess1;
    case DicomEncoding::kJpeg2000:
      return EXS_JPEG2000LosslessOnly;
  }
  return EXS_LittleEndianExplicit;
}

}  // namespace

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

DicomSpec EightBitSlice(int rows, int columns, const uint8_t* pixels) {
  DicomSpec spec;
  spec.rows = rows;
  spec.columns = columns;
  spec.bits_allocated = 8;
  spec.values.assign(pixels, pixels + size_t(rows) * size_t(columns));
  return spec;
}

std::string MakeDicom(const DicomSpec& spec) {
  RegisterEncoders();
  DcmFileFormat file;
  DcmDataset* data = file.getDataset();
  char uid[100];
  const bool multi = spec.frames > 1;
  const char* sop_class =
      multi ? (spec.bits_allocated == 8
                   ? UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage
                   : UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage)
            : UID_CTImageStorage;
  data->putAndInsertString(DCM_SOPClassUID, sop_class);
  data->putAndInsertString(
      DCM_SOPInstanceUID,
      dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  data->putAndInsertString(DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(
                                                     uid, SITE_STUDY_UID_ROOT));
  data->putAndInsertString(
      DCM_SeriesInstanceUID,
      dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT));
  data->putAndInsertString(DCM_PatientName, "Synthetic^Fixture");
  data->putAndInsertString(DCM_PatientID, "TEST-0001");
  data->putAndInsertString(DCM_Modality, multi ? "OT" : "CT");
  data->putAndInsertUint16(DCM_Rows, spec.rows);
  data->putAndInsertUint16(DCM_Columns, spec.columns);
  data->putAndInsertUint16(DCM_SamplesPerPixel, spec.samples);
  data->putAndInsertString(DCM_PhotometricInterpretation,
                           spec.photometric.c_str());
  data->putAndInsertUint16(DCM_BitsAllocated, spec.bits_allocated);
  data->putAndInsertUint16(DCM_BitsStored, spec.bits_allocated);
  data->putAndInsertUint16(DCM_HighBit, spec.bits_allocated - 1);
  data->putAndInsertUint16(DCM_PixelRepresentation, spec.is_signed ? 1 : 0);
  if (spec.samples > 1) data->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  if (multi) {
    data->putAndInsertString(DCM_NumberOfFrames,
                             std::to_string(spec.frames).c_str());
  }
  if (!multi) {
    data->putAndInsertString(DCM_RescaleSlope,
                             absl::StrCat(spec.slope).c_str());
    data->putAndInsertString(DCM_RescaleIntercept,
                             absl::StrCat(spec.intercept).c_str());
  }
  if (spec.geometry) {
    data->putAndInsertString(
        DCM_FrameOfReferenceUID,
        dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
    data->putAndInsertString(DCM_ImagePositionPatient, "-120\\-90.5\\30");
    data->putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    data->putAndInsertString(DCM_PixelSpacing, "0.5\\0.5");
    data->putAndInsertString(DCM_SliceThickness, "1.25");
  }
  const size_t count = spec.values.size();
  if (spec.encoding == DicomEncoding::kJpeg2000) {
    // Encapsulated fragments that only claim to be JPEG 2000.
    auto* pixel_data = new DcmPixelData(DCM_PixelData);
    auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
    sequence->insert(new DcmPixelItem(DCM_PixelItemTag));  // offset table
    auto* fragment = new DcmPixelItem(DCM_PixelItemTag);
    Uint8 bytes[16] = {0xff, 0x4f, 0xff, 0x51};
    fragment->putUint8Array(bytes, sizeof(bytes));
    sequence->insert(fragment);
    pixel_data->putOriginalRepresentation(EXS_JPEG2000LosslessOnly, nullptr,
                                          sequence);
    data->insert(pixel_data);
  } else if (spec.bits_allocated == 8) {
    std::vector<Uint8> words(count);
    for (size_t i = 0; i < count; ++i)
      words[i] = static_cast<Uint8>(spec.values[i]);
    data->putAndInsertUint8Array(DCM_PixelData, words.data(), count);
  } else {
    std::vector<Uint16> words(count);
    for (size_t i = 0; i < count; ++i) {
      words[i] = static_cast<Uint16>(spec.values[i] & 0xffff);
    }
    data->putAndInsertUint16Array(DCM_PixelData, words.data(), count);
  }
  const E_TransferSyntax syntax = SyntaxOf(spec.encoding);
  if (spec.encoding != DicomEncoding::kJpeg2000) {
    const OFCondition chosen = data->chooseRepresentation(syntax, nullptr);
    EXPECT_TRUE(chosen.good()) << chosen.text();
  }
  const auto path = std::filesystem::path(::testing::TempDir()) /
                    absl::StrCat("fixture_", getpid(), ".dcm");
  const OFCondition saved = file.saveFile(path.c_str(), syntax);
  EXPECT_TRUE(saved.good()) << saved.text();
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::filesystem::remove(path);
  return bytes.str();
}

}  // namespace unet::testing
