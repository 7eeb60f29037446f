#include "model/imaging/preprocess.h"

#include <algorithm>
#include <cmath>

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

}  // namespace

absl::StatusOr<PreparedImage> Preprocess(const cv::Mat& image,
                                         const ModelConfig& config) {
  const auto& arch = config.architecture();
  if (image.channels() != static_cast<int>(arch.input_channels())) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", image.channels(),
                     " channels; the model takes ", arch.input_channels()));
  }
  const int levels = arch.channels_size();
  const int margin = ContextMargin(levels);
  PreparedImage prepared;
  prepared.channels = image.channels();
  prepared.height = image.rows;
  prepared.width = image.cols;
  prepared.padded_height = NextValidInputSide(image.rows + 2 * margin, levels);
  prepared.padded_width = NextValidInputSide(image.cols + 2 * margin, levels);
  prepared.pad_top = margin;
  prepared.pad_left = margin;

  cv::Mat scaled;
  image.convertTo(scaled, CV_32F, ScaleToUnitRange(image.depth()));
  cv::Mat padded;
  // REFLECT_101 mirrors about the edge pixel, as the paper extrapolates, and
  // reflects again where the margin is larger than the image.
  cv::copyMakeBorder(scaled, padded, margin,
                     prepared.padded_height - image.rows - margin, margin,
                     prepared.padded_width - image.cols - margin,
                     cv::BORDER_REFLECT_101);

  std::vector<cv::Mat> planes;
  cv::split(padded, planes);
  const size_t plane_size =
      static_cast<size_t>(prepared.padded_height) * prepared.padded_width;
  prepared.chw.resize(plane_size * planes.size());
  for (size_t c = 0; c < planes.size(); ++c) {
    const float mean = PerChannel(config.normalization().mean(), c, 0.0f);
    const float std = PerChannel(config.normalization().std(), c, 1.0f);
    cv::Mat plane(prepared.padded_height, prepared.padded_width, CV_32F,
                  prepared.chw.data() + c * plane_size);
    planes[c].convertTo(plane, CV_32F, 1.0 / std, -mean / std);
  }
  return prepared;
}

}  // namespace unet
