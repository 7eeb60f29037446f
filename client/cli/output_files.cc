#include "client/cli/output_files.h"

#include <opencv2/imgcodecs.hpp>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "client/cli/atomic_file.h"
#include "client/cli/mask_rendering.h"
#include "common/status_macros.h"

namespace unet::client {
namespace fs = std::filesystem;
using segmentation::v1::Probabilities;

std::vector<fs::path> OutputPaths::All() const {
  std::vector<fs::path> all;
  for (const fs::path* path : {&mask, &overlay, &visible, &probabilities}) {
    if (!path->empty()) all.push_back(*path);
  }
  return all;
}

OutputPaths OutputPathsFor(const fs::path& output_dir,
                           const fs::path& output_stem,
                           const OutputKinds& kinds, bool dicom_input) {
  const fs::path base = output_dir / output_stem;
  if (dicom_input) return {fs::path(absl::StrCat(base.string(), "_seg.dcm"))};
  const auto with_suffix = [&](bool wanted, absl::string_view suffix) {
    return wanted ? fs::path(absl::StrCat(base.string(), suffix)) : fs::path();
  };
  return {with_suffix(true, "_mask.png"),
          with_suffix(kinds.overlay, "_overlay.png"),
          with_suffix(kinds.visible, "_visible.png"),
          with_suffix(kinds.probabilities, "_probabilities.tif")};
}

bool AllOutputsExist(const OutputPaths& paths) {
  for (const fs::path& path : paths.All()) {
    std::error_code error;
    if (!fs::is_regular_file(path, error)) return false;
  }
  return true;
}

namespace {

// Writes `path` atomically with `imwrite(temporary_path)`, an OpenCV writer
// that picks the format by the file's extension.
absl::Status WriteWithOpenCv(
    const fs::path& path, absl::FunctionRef<bool(const std::string&)> imwrite) {
  return WriteAtomically(path, [&](const fs::path& temporary) {
    bool written = false;
    try {
      written = imwrite(temporary.string());
    } catch (const cv::Exception& e) {
      return absl::InternalError(
          absl::StrCat("cannot write ", path.string(), ": ", e.what()));
    }
    return written ? absl::OkStatus()
                   : absl::InternalError(
                         absl::StrCat("cannot write ", path.string()));
  });
}

absl::Status WriteImage(const fs::path& path, const cv::Mat& image) {
  return WriteWithOpenCv(path, [&](const std::string& temporary) {
    return cv::imwrite(temporary, image);
  });
}

absl::StatusOr<cv::Mat> DecodeMask(const std::string& png, uint32_t width,
                                   uint32_t height) {
  cv::Mat mask;
  try {
    const cv::Mat bytes(1, static_cast<int>(png.size()), CV_8UC1,
                        const_cast<char*>(png.data()));
    mask = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
  }
  if (mask.type() != CV_8UC1 || mask.cols != static_cast<int>(width) ||
      mask.rows != static_cast<int>(height)) {
    return absl::DataLossError("the server's mask is not the PNG it says");
  }
  return mask;
}

}  // namespace

absl::Status WriteOutputs(const OutputPaths& paths,
                          const SegmentedImage& image) {
  const segmentation::v1::Mask& mask_proto = image.response->mask();
  if (!paths.overlay.empty() || !paths.visible.empty()) {
    ASSIGN_OR_RETURN(
        const cv::Mat mask,
        DecodeMask(mask_proto.data(), mask_proto.width(), mask_proto.height()));
    if (!paths.overlay.empty()) {
      ASSIGN_OR_RETURN(const cv::Mat picture, DecodeForDisplay(image.input));
      if (picture.size() != mask.size()) {
        return absl::DataLossError(
            absl::StrCat("the mask is ", mask.cols, "x", mask.rows,
                         ", the image ", picture.cols, "x", picture.rows));
      }
      RETURN_IF_ERROR(WriteImage(
          paths.overlay, RenderOverlay(picture, mask, image.class_names)));
    }
    if (!paths.visible.empty()) {
      const int num_classes =
          std::max<int>(2, static_cast<int>(image.class_names.size()));
      RETURN_IF_ERROR(
          WriteImage(paths.visible, VisibleMask(mask, num_classes)));
    }
  }
  if (!paths.probabilities.empty()) {
    RETURN_IF_ERROR(WriteProbabilitiesTiff(paths.probabilities,
                                           image.response->probabilities()));
  }
  return WriteBytesAtomically(paths.mask, mask_proto.data());
}

absl::Status WriteProbabilitiesTiff(const fs::path& path,
                                    const Probabilities& probabilities) {
  const size_t plane = size_t{probabilities.width()} * probabilities.height();
  if (probabilities.num_classes() == 0 ||
      probabilities.data().size() !=
          plane * probabilities.num_classes() * sizeof(float)) {
    return absl::DataLossError("the server sent no complete probabilities");
  }
  std::vector<cv::Mat> pages;
  for (uint32_t c = 0; c < probabilities.num_classes(); ++c) {
    // Views into the response: written, not kept.
    pages.emplace_back(
        static_cast<int>(probabilities.height()),
        static_cast<int>(probabilities.width()), CV_32FC1,
        const_cast<char*>(probabilities.data().data() + c * plane * 4));
  }
  return WriteWithOpenCv(path, [&](const std::string& temporary) {
    return cv::imwritemulti(temporary, pages);
  });
}

}  // namespace unet::client
