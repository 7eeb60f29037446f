#include "model/imaging/preprocess.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

double ScaleToUnitRange(int depth) {
  switch (depth) {
    case CV_8U:
      return 1.0 / 255.0;
    case CV_16U:
      return 1.0 / 65535.0;
    default:
      return 1.0;  // float images are taken as given
  }
}

float PerChannel(const google::protobuf::RepeatedField<float>& values, int c,
                 float fallback) {
  if (values.empty()) return fallback;
  return values.size() == 1 ? values[0] : values[c];
}

// The mirrored border on the top and left: the context margin, or none for a
// model that stretches its output over its input.
int LeadingPad(const ModelConfig& config) {
  const auto& arch = config.architecture();
  return arch.retain_dim() ? 0 : ContextMargin(arch.channels_size());
}

absl::StatusOr<PreparedImage> PrepareUnchecked(const cv::Mat& image,
                                               const ModelConfig& config) {
  const int pad = LeadingPad(config);
  const InputSize size = PaddedInputSize(image.rows, image.cols, config);
  PreparedImage prepared;
  prepared.channels = image.channels();
  prepared.height = image.rows;
  prepared.width = image.cols;
  prepared.padded_height = static_cast<int>(size.height);
  prepared.padded_width = static_cast<int>(size.width);
  prepared.pad_top = pad;
  prepared.pad_left = pad;

  // Pad at the image's own depth and convert once, straight into the CHW
  // buffer: one float copy of the input instead of four.
  cv::Mat padded;
  // REFLECT_101 mirrors about the edge pixel, as the paper extrapolates, and
  // reflects again where the margin is larger than the image.
  cv::copyMakeBorder(
      image, padded, pad, prepared.padded_height - image.rows - pad, pad,
      prepared.padded_width - image.cols - pad, cv::BORDER_REFLECT_101);
  std::vector<cv::Mat> planes;
  cv::split(padded, planes);
  padded.release();
  const size_t plane_size =
      static_cast<size_t>(prepared.padded_height) * prepared.padded_width;
  prepared.chw.resize(plane_size * planes.size());
  const double unit = ScaleToUnitRange(image.depth());
  for (size_t c = 0; c < planes.size(); ++c) {
    const double mean = PerChannel(config.normalization().mean(), c, 0.0f);
    const double std = PerChannel(config.normalization().std(), c, 1.0f);
    cv::Mat plane(prepared.padded_height, prepared.padded_width, CV_32F,
                  prepared.chw.data() + c * plane_size);
    // (v * unit - mean) / std in one pass.
    planes[c].convertTo(plane, CV_32F, unit / std, -mean / std);
    planes[c].release();
  }
  return prepared;
}

}  // namespace

InputSize PaddedInputSize(int64_t height, int64_t width,
                          const ModelConfig& config) {
  const int levels = config.architecture().channels_size();
  const int64_t border = 2 * int64_t{LeadingPad(config)};
  return {NextValidInputSide(height + border, levels),
          NextValidInputSide(width + border, levels)};
}

absl::StatusOr<PreparedImage> Preprocess(const cv::Mat& image,
                                         const ModelConfig& config) {
  const auto& arch = config.architecture();
  if (image.channels() != static_cast<int>(arch.input_channels())) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", image.channels(),
                     " channels; the model takes ", arch.input_channels()));
  }
  try {
    return PrepareUnchecked(image, config);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory preparing the image");
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) {
      return absl::ResourceExhaustedError("out of memory preparing the image");
    }
    return absl::InternalError(
        absl::StrCat("cannot prepare the image: ", e.err));
  }
}

}  // namespace unet
