#include "server/imaging/dicom_structure.h"

#include <dcmtk/dcmdata/dctag.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace unet {
namespace {

constexpr uint32_t kUndefinedLength = 0xffffffff;
constexpr int kMaxDepth = 16;

struct Encoding {
  bool explicit_vr = true;
  bool little_endian = true;
};

// Reads the dataset's elements in [at, end) one header at a time.
class Walker {
 public:
  Walker(absl::string_view bytes, Encoding encoding)
      : bytes_(bytes), encoding_(encoding) {}

  // Walks elements until `end`, or until a delimiter when `delimited`.
  absl::Status Elements(size_t& at, size_t end, int depth, bool delimited) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          "the DICOM file nests sequences too deep");
    }
    while (at < end) {
      uint16_t group, element;
      if (!Read16(at, end, group) || !Read16(at, end, element)) {
        return Truncated(0, 0);
      }
      if (group == 0xfffe) {  // an item or a delimiter
        uint32_t length;
        if (!Read32(at, end, length)) return Truncated(group, element);
        if (element == 0xe00d || element == 0xe0dd) {
          if (delimited) return absl::OkStatus();
          continue;  // a stray delimiter: DCMTK skips it too
        }
        RETURN_IF_ERROR(Item(at, end, length, depth));
        continue;
      }
      std::string vr;
      uint32_t length = 0;
      if (encoding_.explicit_vr) {
        if (end - at < 2) return Truncated(group, element);
        vr = std::string(bytes_.substr(at, 2));
        at += 2;
        if (HasLongLength(vr)) {
          uint16_t reserved;
          if (!Read16(at, end, reserved) || !Read32(at, end, length)) {
            return Truncated(group, element);
          }
        } else {
          uint16_t short_length;
          if (!Read16(at, end, short_length)) return Truncated(group, element);
          length = short_length;
        }
      } else {
        if (!Read32(at, end, length)) return Truncated(group, element);
        // The dictionary says which implicit elements are sequences.
        vr = DcmTag(group, element).getEVR() == EVR_SQ ? "SQ" : "";
      }
      const bool pixel_data = group == 0x7fe0 && element == 0x0010;
      if (length == kUndefinedLength) {
        // Fragments only as OB or OW pixel data: DCMTK reads any other
        // undefined-length element, pixel data as UN included, as a
        // sequence of items.
        if (pixel_data &&
            (!encoding_.explicit_vr || vr == "OB" || vr == "OW")) {
          RETURN_IF_ERROR(Fragments(at, end, group, element));
        } else {
          // A sequence (or UN holding one, encoded implicitly).
          const Encoding saved = encoding_;
          if (vr == "UN") encoding_.explicit_vr = false;
          absl::Status items = Elements(at, end, depth + 1, true);
          encoding_ = saved;
          RETURN_IF_ERROR(items);
        }
        continue;
      }
      if (length > end - at) return TooLong(group, element, length, end - at);
      const bool dictionary_sequence =
          DcmTag(group, element).getEVR() == EVR_SQ;
      if (vr == "SQ" || (vr == "UN" && dictionary_sequence)) {
        // UN holding a sequence is encoded implicitly.
        const Encoding saved = encoding_;
        if (vr == "UN") encoding_.explicit_vr = false;
        size_t inner = at;
        absl::Status items = Elements(inner, at + length, depth + 1, false);
        encoding_ = saved;
        RETURN_IF_ERROR(items);
      }
      at += length;
    }
    if (delimited) return Truncated(0xfffe, 0xe0dd);
    return absl::OkStatus();
  }

 private:
  absl::Status Item(size_t& at, size_t end, uint32_t length, int depth) {
    if (length == kUndefinedLength) {
      return Elements(at, end, depth + 1, true);
    }
    if (length > end - at) return TooLong(0xfffe, 0xe000, length, end - at);
    size_t inner = at;
    RETURN_IF_ERROR(Elements(inner, at + length, depth + 1, false));
    at += length;
    return absl::OkStatus();
  }

  // Encapsulated pixel data: items of bytes up to the sequence delimiter.
  absl::Status Fragments(size_t& at, size_t end, uint16_t group,
                         uint16_t element) {
    while (at < end) {
      uint16_t item_group, item_element;
      uint32_t length;
      if (!Read16(at, end, item_group) || !Read16(at, end, item_element) ||
          !Read32(at, end, length)) {
        return Truncated(group, element);
      }
      if (item_group == 0xfffe && item_element == 0xe0dd) {
        return absl::OkStatus();
      }
      if (item_group != 0xfffe || item_element != 0xe000 ||
          length == kUndefinedLength) {
        return absl::InvalidArgumentError(
            "the DICOM pixel data fragments are malformed");
      }
      if (length > end - at) return TooLong(group, element, length, end - at);
      at += length;
    }
    return Truncated(group, element);
  }

  // VRs with a 2-byte length; every other, unknown ones included, has a
  // 4-byte length (PS3.5 7.1.2, and how DCMTK reads them).
  static bool HasLongLength(const std::string& vr) {
    for (const char* short_vr :
         {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO",
          "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"}) {
      if (vr == short_vr) return false;
    }
    return true;
  }

  bool Read16(size_t& at, size_t end, uint16_t& value) const {
    if (end - at < 2) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(bytes_.data() + at);
    value = encoding_.little_endian ? uint16_t(p[0] | p[1] << 8)
                                    : uint16_t(p[1] | p[0] << 8);
    at += 2;
    return true;
  }

  bool Read32(size_t& at, size_t end, uint32_t& value) const {
    if (end - at < 4) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(bytes_.data() + at);
    value = encoding_.little_endian
                ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                      uint32_t(p[3]) << 24
                : uint32_t(p[3]) | uint32_t(p[2]) << 8 | uint32_t(p[1]) << 16 |
                      uint32_t(p[0]) << 24;
    at += 4;
    return true;
  }

  static absl::Status Truncated(uint16_t group, uint16_t element) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the DICOM file is truncated in element (%04x,%04x)", group, element));
  }

  static absl::Status TooLong(uint16_t group, uint16_t element, uint32_t length,
                              size_t left) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "DICOM element (%04x,%04x) declares %u bytes; %u are left", group,
        element, length, left));
  }

  absl::string_view bytes_;
  Encoding encoding_;
};

// Inflates a deflated dataset (raw deflate, PS3.5 A.5) up to `limit` bytes.
absl::StatusOr<std::string> Inflate(absl::string_view deflated, size_t limit) {
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) {
    return absl::ResourceExhaustedError("cannot inflate");
  }
  std::string out;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(deflated.data()));
  stream.avail_in = static_cast<uInt>(deflated.size());
  int result = Z_OK;
  while (result == Z_OK) {
    if (out.size() >= limit) {
      inflateEnd(&stream);
      return absl::InvalidArgumentError(
          "the deflated DICOM dataset inflates beyond this server's limit");
    }
    const size_t before = out.size();
    out.resize(std::min(limit, before + (size_t{1} << 16)));
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    stream.avail_out = static_cast<uInt>(out.size() - before);
    result = inflate(&stream, Z_NO_FLUSH);
    out.resize(out.size() - stream.avail_out);
  }
  inflateEnd(&stream);
  if (result != Z_STREAM_END) {
    return absl::InvalidArgumentError("the deflated DICOM dataset is corrupt");
  }
  return out;
}

}  // namespace

absl::Status CheckDicomStructure(absl::string_view bytes,
                                 size_t max_inflated_bytes) {
  // The meta group (0002,xxxx) follows "DICM", always explicit little
  // endian; its Transfer Syntax UID says how the dataset after it is read.
  std::string syntax;
  size_t dataset = 132;
  // Where (0002,0000), the group's length, says the group ends. DCMTK reads
  // the group by that length, this walk by the group number: a file where
  // they differ would have its dataset inflated from another byte than the
  // one walked here, so it is refused.
  std::optional<size_t> group_end;
  while (dataset + 8 <= bytes.size() &&
         static_cast<uint8_t>(bytes[dataset]) == 0x02 &&
         bytes[dataset + 1] == 0x00) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + dataset);
    const uint16_t element = uint16_t(p[2] | p[3] << 8);
    const std::string vr(bytes.substr(dataset + 4, 2));
    size_t value_at, length;
    if (vr == "OB" || vr == "UN" || vr == "SQ" || vr == "UT") {
      if (dataset + 12 > bytes.size()) break;
      length = uint32_t(p[8]) | uint32_t(p[9]) << 8 | uint32_t(p[10]) << 16 |
               uint32_t(p[11]) << 24;
      value_at = dataset + 12;
    } else {
      length = uint16_t(p[6] | p[7] << 8);
      value_at = dataset + 8;
    }
    if (length > bytes.size() - value_at) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "DICOM meta element (0002,%04x) declares %u bytes; %u are left",
          element, length, bytes.size() - value_at));
    }
    if (element == 0x0000 && length == 4) {
      group_end = value_at + 4 +
                  (uint32_t(p[8]) | uint32_t(p[9]) << 8 |
                   uint32_t(p[10]) << 16 | uint32_t(p[11]) << 24);
    }
    if (element == 0x0010) {
      syntax = std::string(bytes.substr(value_at, length));
      while (!syntax.empty() &&
             (syntax.back() == '\0' || syntax.back() == ' ')) {
        syntax.pop_back();
      }
    }
    dataset = value_at + length;
  }
  if (group_end.has_value() && *group_end != dataset) {
    return absl::InvalidArgumentError(
        "the DICOM meta group's length does not match its elements");
  }
  if (syntax == "1.2.840.10008.1.2.1.99") {
    absl::StatusOr<std::string> inflated =
        Inflate(bytes.substr(dataset), max_inflated_bytes);
    if (!inflated.ok()) return inflated.status();
    size_t start = 0;
    return Walker(*inflated, {true, true})
        .Elements(start, inflated->size(), 0, false);
  }
  const Encoding encoding{syntax != "1.2.840.10008.1.2",
                          syntax != "1.2.840.10008.1.2.2"};
  return Walker(bytes, encoding).Elements(dataset, bytes.size(), 0, false);
}

}  // namespace unet
