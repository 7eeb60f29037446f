#include "server/imaging/dicom_seg.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <new>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace unet {
namespace {

using segmentation::v1::ClassCoding;
using segmentation::v1::Code;

absl::Status Check(const OFCondition& condition, const char* what) {
  if (condition.good()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      "writing the DICOM Segmentation: ", what, ": ", condition.text()));
}

#define SEG_RETURN_IF_BAD(expr, what)                                \
  do {                                                               \
    if (absl::Status _status = Check((expr), what); !_status.ok()) { \
      return _status;                                                \
    }                                                                \
  } while (false)

ClassCoding DefaultCoding() {
  ClassCoding coding;
  for (Code* code : {coding.mutable_category(), coding.mutable_type()}) {
    code->set_value("85756007");
    code->set_scheme("SCT");
    code->set_meaning("Tissue");
  }
  return coding;
}

CodeSequenceMacro ToMacro(const Code& code) {
  return CodeSequenceMacro(code.value().c_str(), code.scheme().c_str(),
                           code.meaning().c_str());
}

OFString HeaderString(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  item.findAndGetOFStringArray(tag, value);
  return value;
}

// The source's plane position of frame `f` (0-based): the top-level Image
// Position (Patient) of a single-frame image, or the per-frame functional
// group of an enhanced multi-frame one. Empty when it has none.
OFString PlanePosition(DcmDataset& header, int f) {
  OFString position = HeaderString(header, DCM_ImagePositionPatient);
  DcmItem* frame = nullptr;
  if (header
          .findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame,
                                  f)
          .good()) {
    DcmItem* plane = nullptr;
    if (frame->findAndGetSequenceItem(DCM_PlanePositionSequence, plane, 0)
            .good()) {
      position = HeaderString(*plane, DCM_ImagePositionPatient);
    }
  }
  return position;
}

absl::Status AddSharedGeometry(DcmDataset& header, DcmSegmentation& seg) {
  const OFString spacing = HeaderString(header, DCM_PixelSpacing);
  if (!spacing.empty()) {
    FGPixelMeasures measures;
    SEG_RETURN_IF_BAD(measures.setPixelSpacing(spacing), "pixel spacing");
    const OFString thickness = HeaderString(header, DCM_SliceThickness);
    if (!thickness.empty()) {
      SEG_RETURN_IF_BAD(measures.setSliceThickness(thickness),
                        "slice thickness");
    }
    SEG_RETURN_IF_BAD(seg.addForAllFrames(measures), "pixel measures");
  }
  OFString orientation[6];
  bool has_orientation = true;
  for (int i = 0; i < 6; ++i) {
    has_orientation &=
        header
            .findAndGetOFString(DCM_ImageOrientationPatient, orientation[i], i)
            .good();
  }
  if (has_orientation) {
    FGPlaneOrientationPatient plane;
    SEG_RETURN_IF_BAD(plane.setImageOrientationPatient(
                          orientation[0], orientation[1], orientation[2],
                          orientation[3], orientation[4], orientation[5]),
                      "image orientation");
    SEG_RETURN_IF_BAD(seg.addForAllFrames(plane), "plane orientation");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Serialize(DcmSegmentation& seg,
                                      bool frame_of_reference) {
  DcmFileFormat file;
  DcmDataset& data = *file.getDataset();
  SEG_RETURN_IF_BAD(seg.writeDataset(data), "dataset");
  if (!frame_of_reference) {
    // Without patient geometry: Patient Orientation (type 2C) present and
    // empty, and no Position Reference Indicator of a frame of reference.
    SEG_RETURN_IF_BAD(data.insertEmptyElement(DCM_PatientOrientation),
                      "patient orientation");
    delete data.remove(DCM_PositionReferenceIndicator);
  }
  // Sized for the uncompressed frames (bit-packed) plus the header.
  std::string bytes(static_cast<size_t>(file.calcElementLength(
                        EXS_LittleEndianExplicit, EET_ExplicitLength)) +
                        (1 << 16),
                    '\0');
  DcmOutputBufferStream stream(bytes.data(), bytes.size());
  file.transferInit();
  const OFCondition written =
      file.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr);
  file.transferEnd();
  SEG_RETURN_IF_BAD(written, "Part 10 file");
  void* buffer = nullptr;
  offile_off_t length = 0;
  stream.flushBuffer(buffer, length);
  bytes.resize(static_cast<size_t>(length));
  return bytes;
}

absl::StatusOr<std::string> WriteOrThrow(const DicomSource& source,
                                         const std::vector<cv::Mat>& masks,
                                         const SegmentationModel& model) {
  DcmDataset& header = *source.header;
  const segmentation::v1::ModelConfig& config = *model.config;
  const int rows = masks.front().rows, columns = masks.front().cols;
  const std::string version = absl::StrCat(model.version);
  IODGeneralEquipmentModule::EquipmentInfo equipment(
      "unet-segmentation", model.name.c_str(), "1", version.c_str());
  ContentIdentificationMacro content("1", "SEGMENTATION", "U-Net segmentation",
                                     "Service^Segmentation");
  DcmSegmentation* created = nullptr;
  SEG_RETURN_IF_BAD(DcmSegmentation::createBinarySegmentation(
                        created, static_cast<Uint16>(rows),
                        static_cast<Uint16>(columns), equipment, content),
                    "create");
  std::unique_ptr<DcmSegmentation> seg(created);
  // Patient, study and frame of reference of the source; a new series.
  SEG_RETURN_IF_BAD(seg->importFromSourceImage(header), "source import");
  if (HeaderString(header, DCM_FrameOfReferenceUID).empty()) {
    // A source without a frame of reference (a secondary capture, a
    // microscope image): the Segmentation has none either, which the
    // standard allows when each frame names the frame it derives from
    // (DCMTK's module rule would demand one: relax it to 1C).
    if (IODRule* rule = seg->getRules()->getByTag(DCM_FrameOfReferenceUID)) {
      rule->setType("1C");
    }
  }
  SEG_RETURN_IF_BAD(seg->getSeries().setSeriesNumber("9901"), "series");
  SEG_RETURN_IF_BAD(seg->getSeries().setSeriesDescription(
                        absl::StrCat(model.name, " v", version).c_str()),
                    "series description");
  if (absl::Status geometry = AddSharedGeometry(header, *seg); !geometry.ok()) {
    return geometry;
  }

  // One segment per class but "background".
  std::vector<std::pair<int, Uint16>> segments;  // class, segment number
  for (int c = 0; c < config.class_names_size(); ++c) {
    const std::string& name = config.class_names(c);
    if (absl::AsciiStrToLower(name) == "background") continue;
    const ClassCoding coding = config.class_codings().empty()
                                   ? DefaultCoding()
                                   : config.class_codings(c);
    DcmSegment* segment = nullptr;
    SEG_RETURN_IF_BAD(
        DcmSegment::create(segment, name.c_str(), ToMacro(coding.category()),
                           ToMacro(coding.type()), DcmSegTypes::SAT_AUTOMATIC,
                           model.name.c_str()),
        "segment");
    AlgorithmIdentificationMacro& algorithm =
        segment->getSegmentationAlgorithmIdentification();
    algorithm.getAlgorithmFamilyCode().set("123110", "DCM",
                                           "Artificial Intelligence");
    algorithm.setAlgorithmName(model.name.c_str());
    algorithm.setAlgorithmVersion(version.c_str());
    Uint16 number = 0;
    SEG_RETURN_IF_BAD(seg->addSegment(segment, number), "add segment");
    segments.emplace_back(c, number);
  }

  OFString sop_class = HeaderString(header, DCM_SOPClassUID);
  OFString sop_instance = HeaderString(header, DCM_SOPInstanceUID);
  std::vector<Uint8> binary(static_cast<size_t>(rows) * columns);
  for (const auto& [c, number] : segments) {
    for (size_t f = 0; f < masks.size(); ++f) {
      const cv::Mat& mask = masks[f];
      for (int y = 0; y < rows; ++y) {
        const uint8_t* row = mask.ptr<uint8_t>(y);
        for (int x = 0; x < columns; ++x) {
          binary[static_cast<size_t>(y) * columns + x] = row[x] == c ? 1 : 0;
        }
      }
      FGFrameContent frame_content;
      SEG_RETURN_IF_BAD(frame_content.setStackID("1"), "stack");
      SEG_RETURN_IF_BAD(
          frame_content.setInStackPositionNumber(static_cast<Uint32>(f + 1)),
          "stack position");
      SEG_RETURN_IF_BAD(frame_content.setDimensionIndexValues(number, 0),
                        "dimension index");
      SEG_RETURN_IF_BAD(
          frame_content.setDimensionIndexValues(static_cast<Uint32>(f + 1), 1),
          "dimension index");
      FGSegmentation segment_group;
      SEG_RETURN_IF_BAD(segment_group.setReferencedSegmentNumber(number),
                        "segment reference");
      // Derived from its source frame (frame numbers only for multi-frame).
      OFVector<ImageSOPInstanceReferenceMacro> derived(1);
      derived[0].setReferencedSOPClassUID(sop_class);
      derived[0].setReferencedSOPInstanceUID(sop_instance);
      if (source.frames > 1) {
        derived[0].setReferencedFrameNumber(
            OFVector<Uint16>(1, static_cast<Uint16>(f + 1)));
      }
      std::unique_ptr<FGDerivationImage> derivation(
          DcmSegmentation::createDerivationImageFG(derived,
                                                   "U-Net segmentation"));
      if (derivation == nullptr) {
        return absl::InternalError(
            "writing the DICOM Segmentation: derivation image");
      }
      OFVector<FGBase*> per_frame = {&frame_content, &segment_group,
                                     derivation.get()};
      FGPlanePosPatient position;
      const OFString at = PlanePosition(header, static_cast<int>(f));
      if (!at.empty()) {
        OFString xyz[3];
        for (int i = 0; i < 3; ++i) {
          DcmDecimalString value(DCM_ImagePositionPatient);
          value.putOFStringArray(at);
          value.getOFString(xyz[i], i);
        }
        SEG_RETURN_IF_BAD(
            position.setImagePositionPatient(xyz[0], xyz[1], xyz[2]),
            "plane position");
        per_frame.push_back(&position);
      }
      SEG_RETURN_IF_BAD(seg->addFrame(binary.data(), number, per_frame),
                        "add frame");
    }
  }
  // Frames are indexed by segment, then by source frame.
  IODMultiframeDimensionModule& dimensions = seg->getDimensions();
  char uid[100];
  dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
  SEG_RETURN_IF_BAD(dimensions.addDimensionIndex(
                        DCM_ReferencedSegmentNumber, uid,
                        DCM_SegmentIdentificationSequence, "Segment"),
                    "segment dimension");
  SEG_RETURN_IF_BAD(
      dimensions.addDimensionIndex(DCM_InStackPositionNumber, uid,
                                   DCM_FrameContentSequence, "Frame"),
      "frame dimension");
  // The source instance, referenced from the whole object as well.
  IODReferences references;
  references.add(new IODImageReference(
      HeaderString(header, DCM_PatientID),
      HeaderString(header, DCM_StudyInstanceUID),
      HeaderString(header, DCM_SeriesInstanceUID), sop_instance, sop_class));
  seg->getCommonInstanceReference().addReferences(references);
  return Serialize(*seg,
                   !HeaderString(header, DCM_FrameOfReferenceUID).empty());
}

}  // namespace

absl::StatusOr<std::string> WriteDicomSegmentation(
    const DicomSource& source, const std::vector<cv::Mat>& masks,
    const SegmentationModel& model) {
  if (masks.empty() || source.header == nullptr || model.config == nullptr) {
    return absl::InternalError("a DICOM Segmentation needs masks and a source");
  }
  try {
    return WriteOrThrow(source, masks, model);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "out of memory writing the DICOM Segmentation");
  }
}

}  // namespace unet
