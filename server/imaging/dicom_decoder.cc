#include "server/imaging/dicom_decoder.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/imaging/dicom_source.h"
#include "server/imaging/dicom_structure.h"

namespace unet {
namespace {

using segmentation::v1::DicomInput;

// Registers the decompression codecs and silences DCMTK's logger, once.
void InitializeDcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  });
}

// The transfer syntaxes decoded here; JPEG 2000 is named in its refusal.
absl::Status CheckTransferSyntax(const DcmXfer& syntax) {
  switch (syntax.getXfer()) {
    case EXS_LittleEndianImplicit:
    case EXS_LittleEndianExplicit:
    case EXS_BigEndianExplicit:
    case EXS_DeflatedLittleEndianExplicit:
    case EXS_RLELossless:
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
    case EXS_JPEGProcess14:
    case EXS_JPEGProcess14SV1:
    case EXS_JPEGLSLossless:
    case EXS_JPEGLSLossy:
      return absl::OkStatus();
    case EXS_JPEG2000LosslessOnly:
    case EXS_JPEG2000:
    case EXS_JPEG2000MulticomponentLosslessOnly:
    case EXS_JPEG2000Multicomponent:
      return absl::InvalidArgumentError(
          "DICOM pixel data in JPEG 2000 is not supported; send it "
          "uncompressed, RLE, JPEG or JPEG-LS");
    default:
      return absl::InvalidArgumentError(absl::StrCat("DICOM transfer syntax \"",
                                                     syntax.getXferName(),
                                                     "\" is not supported"));
  }
}

struct PixelLayout {
  int rows = 0, columns = 0, frames = 1;
  int bits_allocated = 0, bits_stored = 0;
  bool is_signed = false;
  bool monochrome1 = false;
  double slope = 1, intercept = 0;
};

// Reads what the pixels are from the header and checks it, before any
// pixel data is decompressed.
absl::StatusOr<PixelLayout> ReadLayout(DcmDataset& data,
                                       const DecodeLimits& limits) {
  PixelLayout layout;
  Uint16 rows = 0, columns = 0, samples = 1, allocated = 0, stored = 0,
         representation = 0;
  if (data.findAndGetUint16(DCM_Rows, rows).bad() ||
      data.findAndGetUint16(DCM_Columns, columns).bad() ||
      data.findAndGetUint16(DCM_BitsAllocated, allocated).bad()) {
    return absl::InvalidArgumentError(
        "the DICOM file has no image: Rows, Columns or Bits Allocated is "
        "missing");
  }
  data.findAndGetUint16(DCM_SamplesPerPixel, samples);
  if (data.findAndGetUint16(DCM_BitsStored, stored).bad()) stored = allocated;
  data.findAndGetUint16(DCM_PixelRepresentation, representation);
  OFString photometric;
  data.findAndGetOFString(DCM_PhotometricInterpretation, photometric);
  Sint32 frames = 1;
  if (data.findAndGetSint32(DCM_NumberOfFrames, frames).bad()) frames = 1;
  if (samples != 1 ||
      (photometric != "MONOCHROME1" && photometric != "MONOCHROME2")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM images must be greyscale (MONOCHROME1 or MONOCHROME2, one "
        "sample per pixel); this one is ",
        photometric.empty() ? "unnamed" : photometric.c_str(), " with ",
        samples, " samples"));
  }
  if ((allocated != 8 && allocated != 16) || stored < 1 || stored > allocated) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM pixels of ", allocated, " bits allocated and ",
                     stored, " stored are not supported (8 or 16 allocated)"));
  }
  if (rows < 1 || columns < 1 || frames < 1) {
    return absl::InvalidArgumentError("the DICOM image is empty");
  }
  const int64_t frame_pixels = int64_t{rows} * columns;
  if (rows > limits.max_side || columns > limits.max_side ||
      frame_pixels * frames > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a DICOM image of ", frames, " frame(s) of ", columns, "x", rows,
        " exceeds this server's limit of ", limits.max_pixels,
        " pixels in all (sides up to ", limits.max_side, ")"));
  }
  layout.rows = rows;
  layout.columns = columns;
  layout.frames = frames;
  layout.bits_allocated = allocated;
  layout.bits_stored = stored;
  layout.is_signed = representation == 1;
  layout.monochrome1 = photometric == "MONOCHROME1";
  Float64 slope = 1, intercept = 0;
  if (data.findAndGetFloat64(DCM_RescaleSlope, slope).good() && slope != 0 &&
      std::isfinite(slope)) {
    layout.slope = slope;
  }
  if (data.findAndGetFloat64(DCM_RescaleIntercept, intercept).good() &&
      std::isfinite(intercept)) {
    layout.intercept = intercept;
  }
  return layout;
}

// The stored value of pixel `i`: BitsStored bits, sign-extended if signed.
template <typename Word>
double StoredValue(const Word* words, int64_t i, const PixelLayout& layout) {
  const uint32_t mask = (uint32_t{1} << layout.bits_stored) - 1;
  const uint32_t raw = static_cast<uint32_t>(words[i]) & mask;
  if (layout.is_signed && (raw >> (layout.bits_stored - 1)) != 0) {
    return static_cast<double>(static_cast<int64_t>(raw) -
                               (int64_t{1} << layout.bits_stored));
  }
  return static_cast<double>(raw);
}

// Maps one frame's modality values to [0, 1] as `mapping` says.
template <typename Word>
cv::Mat MapFrame(const Word* words, const PixelLayout& layout,
                 const DicomInput& mapping) {
  cv::Mat values(layout.rows, layout.columns, CV_64F);
  const int64_t count = int64_t{layout.rows} * layout.columns;
  auto* out = values.ptr<double>();
  const bool as_stored = mapping.mapping_case() == DicomInput::MAPPING_NOT_SET;
  for (int64_t i = 0; i < count; ++i) {
    const double stored = StoredValue(words, i, layout);
    out[i] = as_stored ? stored : stored * layout.slope + layout.intercept;
  }
  double low = 0, high = 1;
  if (mapping.has_window()) {
    low = mapping.window().center() - mapping.window().width() / 2;
    high = mapping.window().center() + mapping.window().width() / 2;
  } else if (mapping.has_range()) {
    low = mapping.range().min();
    high = mapping.range().max();
  } else if (mapping.has_min_max() || layout.is_signed) {
    cv::minMaxLoc(values, &low, &high);
  } else {
    high = layout.bits_allocated == 8 ? 255.0 : 65535.0;  // as a PNG's
  }
  cv::Mat mapped;
  const double span = high > low ? high - low : 1;
  values.convertTo(mapped, CV_32F, 1 / span, -low / span);
  cv::min(cv::max(mapped, 0.0), 1.0, mapped);
  if (layout.monochrome1) mapped = 1.0 - mapped;
  return mapped;
}

// Values longer than this are only skipped while DCMTK parses (and read
// once the parse has shown they are within the file).
constexpr Uint32 kDeferredValueBytes = 4096;

// Parses `bytes` into `file` without letting a header make DCMTK allocate
// more than the file holds. DCMTK allocates the length an element declares
// before reading it (the DICOM fuzzer found 200-byte files asking for 4 GB),
// so it parses from an in-memory file where it skips long values instead;
// every length is then checked against the file's size before the skipped
// values are read. A deflated dataset, which DCMTK cannot skip in, is
// walked first (dicom_structure.h).
absl::Status ParseWithinTheBytes(absl::string_view bytes,
                                 const DecodeLimits& limits,
                                 DcmFileFormat& file) {
  const size_t max_inflated =
      static_cast<size_t>(limits.max_pixels) * 2 + (size_t{1} << 20);
  if (bytes.find("1.2.840.10008.1.2.1.99") != absl::string_view::npos) {
    if (absl::Status structure = CheckDicomStructure(bytes, max_inflated);
        !structure.ok()) {
      return structure;
    }
  }
  const int fd = memfd_create("dicom", MFD_CLOEXEC);
  if (fd < 0) return absl::ResourceExhaustedError("no memory file for DICOM");
  for (size_t written = 0; written < bytes.size();) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n <= 0) {
      close(fd);
      return absl::ResourceExhaustedError("cannot buffer the DICOM file");
    }
    written += static_cast<size_t>(n);
  }
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  OFCondition read = file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange,
                                   kDeferredValueBytes);
  absl::Status status = absl::OkStatus();
  if (read.bad()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("the DICOM file cannot be read: ", read.text()));
  }
  // A skipped value may still claim more than there is (the last element's
  // skip runs past the end unnoticed): every length must fit the file.
  DcmStack stack;
  while (status.ok() && file.nextObject(stack, OFTrue).good()) {
    if (stack.top()->getLength() > bytes.size()) {
      const DcmTagKey tag = stack.top()->getTag();
      status = absl::InvalidArgumentError(absl::StrFormat(
          "DICOM element (%04x,%04x) declares %u bytes; the file holds %u",
          tag.getGroup(), tag.getElement(), stack.top()->getLength(),
          bytes.size()));
    }
  }
  if (status.ok() && file.loadAllDataIntoMemory().bad()) {
    status = absl::InvalidArgumentError("the DICOM file cannot be read");
  }
  close(fd);
  return status;
}

// Whether `marker` starts a frame header (SOF0-SOF15 of ITU T.81 B.1.1.3;
// C4, C8 and CC are DHT, JPG and DAC).
bool IsStartOfFrame(Uint8 marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
         marker != 0xCC;
}

// Checks the header of one JPEG frame (ITU T.81 B.2) up to its first scan:
// exactly one frame header, of the image's size and components, before the
// scan. DCMTK's IJG decoder runs for minutes on a scan with no frame header
// (found by the dicom_decoder fuzzer), so nothing else reaches it.
absl::Status CheckJpegFrameHeader(const Uint8* bytes, size_t size,
                                  const PixelLayout& layout, int samples) {
  const auto refuse = [](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("a JPEG frame of the DICOM pixel data ", why));
  };
  size_t at = 2;  // past SOI
  bool frame_header = false;
  while (true) {
    if (at + 2 > size || bytes[at] != 0xFF) {
      return refuse("ends or breaks before its scan");
    }
    const Uint8 marker = bytes[at + 1];
    at += 2;
    if (marker == 0xFF) {  // fill byte
      --at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (at + 2 > size) return refuse("ends inside a marker");
    const size_t length = size_t{bytes[at]} << 8 | bytes[at + 1];
    if (length < 2 || at + length > size) {
      return refuse("has a marker longer than the frame");
    }
    if (marker == 0xDA) {
      return frame_header ? absl::OkStatus()
                          : refuse("has a scan before its frame header");
    }
    if (IsStartOfFrame(marker)) {
      if (frame_header) return refuse("has two frame headers");
      if (length < 8) return refuse("has a short frame header");
      const int height = bytes[at + 3] << 8 | bytes[at + 4];
      const int width = bytes[at + 5] << 8 | bytes[at + 6];
      const int components = bytes[at + 7];
      if (height != layout.rows || width != layout.columns ||
          components != samples) {
        return refuse(absl::StrFormat(
            "is %dx%d with %d components; the header says %dx%d with %d", width,
            height, components, layout.columns, layout.rows, samples));
      }
      frame_header = true;
    }
    at += length;
  }
}

// DCMTK reads the precision from the first fragment by walking its markers
// up to the frame header (DJCodecDecoder::scanJpegDataForBitDepth, DCMTK
// 3.6.7), and on some markers it does not step on: it loops forever (two
// fuzzer finds, a TEM marker and a reserved one). Walks the fragment as a
// JPEG stream and accepts it only where the walk reaches the frame header
// over markers that carry a length or are restarts, SOI or EOI; DCMTK could
// decode nothing else anyway, as it finds no precision there.
absl::Status CheckPrecisionScan(const Uint8* bytes, size_t size) {
  size_t at = 0;
  while (at + 4 < size && bytes[at] == 0xFF) {
    const Uint8 marker = bytes[at + 1];
    if (IsStartOfFrame(marker)) return absl::OkStatus();
    if (marker >= 0xD0 && marker <= 0xD9) {
      at += 2;
    } else if (marker > 0xBF && marker < 0xFF) {
      at += 2 + (size_t{bytes[at + 2]} << 8 | bytes[at + 3]);
    } else {
      break;
    }
  }
  return absl::InvalidArgumentError(
      "the first JPEG fragment of the DICOM pixel data does not lead to a "
      "frame header");
}

// Checks every JPEG frame header of `data`'s encapsulated pixel data (the
// fragments that begin a frame, with SOI) before DCMTK decodes any, and the
// first fragment as DCMTK scans it for the precision.
absl::Status CheckJpegFrames(DcmDataset& data, const PixelLayout& layout) {
  Uint16 samples = 1;
  data.findAndGetUint16(DCM_SamplesPerPixel, samples);
  DcmElement* element = nullptr;
  if (data.findAndGetElement(DCM_PixelData, element).bad() ||
      element == nullptr) {
    return absl::InvalidArgumentError("the DICOM file has no pixel data");
  }
  DcmPixelSequence* sequence = nullptr;
  if (static_cast<DcmPixelData*>(element)
          ->getEncapsulatedRepresentation(data.getOriginalXfer(), nullptr,
                                          sequence)
          .bad() ||
      sequence == nullptr) {
    return absl::InvalidArgumentError(
        "the DICOM pixel data is not encapsulated as its transfer syntax says");
  }
  // Item 0 is the basic offset table.
  for (unsigned long i = 1; i < sequence->card(); ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* bytes = nullptr;
    if (sequence->getItem(item, i).bad() || item == nullptr) continue;
    if (item->getUint8Array(bytes).bad() || bytes == nullptr) continue;
    const size_t size = item->getLength();
    if (size >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) {
      RETURN_IF_ERROR(CheckJpegFrameHeader(bytes, size, layout, samples));
    }
    if (i == 1) RETURN_IF_ERROR(CheckPrecisionScan(bytes, size));
  }
  return absl::OkStatus();
}

bool IsIjgJpeg(E_TransferSyntax syntax) {
  return syntax == EXS_JPEGProcess1 || syntax == EXS_JPEGProcess2_4 ||
         syntax == EXS_JPEGProcess14 || syntax == EXS_JPEGProcess14SV1;
}

absl::StatusOr<DicomImage> DecodeOrThrow(absl::string_view bytes,
                                         const DecodeLimits& limits,
                                         const DicomInput& mapping) {
  InitializeDcmtk();
  DcmFileFormat file;
  const absl::Status parsed = ParseWithinTheBytes(bytes, limits, file);
  if (!parsed.ok()) return parsed;
  DcmDataset* data = file.getDataset();
  if (data == nullptr) {
    return absl::InvalidArgumentError("the DICOM file holds no dataset");
  }
  if (absl::Status syntax =
          CheckTransferSyntax(DcmXfer(data->getOriginalXfer()));
      !syntax.ok()) {
    return syntax;
  }
  absl::StatusOr<PixelLayout> layout = ReadLayout(*data, limits);
  if (!layout.ok()) return layout.status();
  if (IsIjgJpeg(data->getOriginalXfer())) {
    RETURN_IF_ERROR(CheckJpegFrames(*data, *layout));
  }
  // Only now, with the sizes known to be within the limits, decompress.
  if (data->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
      !data->canWriteXfer(EXS_LittleEndianExplicit)) {
    return absl::InvalidArgumentError(
        "the DICOM pixel data cannot be decompressed");
  }
  DcmElement* pixel_data = nullptr;
  if (data->findAndGetElement(DCM_PixelData, pixel_data).bad() ||
      pixel_data == nullptr) {
    return absl::InvalidArgumentError("the DICOM file has no pixel data");
  }
  const int64_t frame_pixels = int64_t{layout->rows} * layout->columns;
  const int64_t needed =
      frame_pixels * layout->frames * (layout->bits_allocated / 8);
  if (static_cast<int64_t>(pixel_data->getLength()) < needed) {
    return absl::InvalidArgumentError(
        absl::StrCat("the DICOM pixel data holds ", pixel_data->getLength(),
                     " bytes; its frames need ", needed));
  }
  DicomImage image;
  std::vector<cv::Mat>& frames = image.frames;
  frames.reserve(layout->frames);
  if (layout->bits_allocated == 8) {
    Uint8* words = nullptr;
    if (pixel_data->getUint8Array(words).bad() || words == nullptr) {
      return absl::InvalidArgumentError("the DICOM pixel data is unreadable");
    }
    for (int f = 0; f < layout->frames; ++f) {
      frames.push_back(MapFrame(words + f * frame_pixels, *layout, mapping));
    }
  } else {
    Uint16* words = nullptr;
    if (pixel_data->getUint16Array(words).bad() || words == nullptr) {
      return absl::InvalidArgumentError("the DICOM pixel data is unreadable");
    }
    for (int f = 0; f < layout->frames; ++f) {
      frames.push_back(MapFrame(words + f * frame_pixels, *layout, mapping));
    }
  }
  // The header without its pixels, for a DICOM Segmentation of it.
  auto source = std::make_shared<DicomSource>();
  source->header = std::make_unique<DcmDataset>(*data);
  delete source->header->remove(DCM_PixelData);
  source->frames = layout->frames;
  image.source = std::move(source);
  return image;
}

}  // namespace

absl::StatusOr<DicomImage> DecodeDicom(absl::string_view bytes,
                                       const DecodeLimits& limits,
                                       const DicomInput& mapping) {
  if (!IsDicomFile(bytes)) {
    return absl::InvalidArgumentError(
        "not a DICOM Part 10 file (no \"DICM\" at offset 128)");
  }
  try {
    return DecodeOrThrow(bytes, limits, mapping);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory decoding DICOM");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the DICOM file cannot be decoded: ", e.what()));
  }
}

}  // namespace unet
