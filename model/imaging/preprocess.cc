#include "model/imaging/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

// Returns the `height` x `width` window of the endlessly mirrored image
// whose top-left corner lies at (top, left) in the image's coordinates
// (negative: in the mirrored border). REFLECT_101 mirrors about the edge
// pixel, as the paper extrapolates, and reflects again where the border is
// wider than the image. Each pixel is mapped against the whole image, so
// that every window of one image agrees with every other (copyMakeBorder on
// a part of the image would reflect about the part's edges when the border
// is wider than the part). Contiguous columns are copied as runs.
cv::Mat MirroredWindow(const cv::Mat& image, int top, int left, int height,
                       int width) {
  struct Run {
    int to = 0, from = 0, length = 0;  // columns
  };
  std::vector<Run> runs;
  for (int x = 0; x < width; ++x) {
    const int from =
        cv::borderInterpolate(left + x, image.cols, cv::BORDER_REFLECT_101);
    if (!runs.empty() && runs.back().from + runs.back().length == from) {
      ++runs.back().length;
    } else {
      runs.push_back({x, from, 1});
    }
  }
  cv::Mat window(height, width, image.type());
  const size_t pixel = image.elemSize();
  for (int y = 0; y < height; ++y) {
    const uint8_t* source = image.ptr<uint8_t>(
        cv::borderInterpolate(top + y, image.rows, cv::BORDER_REFLECT_101));
    uint8_t* row = window.ptr<uint8_t>(y);
    for (const Run& run : runs) {
      std::memcpy(row + run.to * pixel, source + run.from * pixel,
                  run.length * pixel);
    }
  }
  return window;
}

// Fills `prepared.chw` with the `prepared.padded_height` x `padded_width`
// window at (top, left) of the mirrored image, normalised. Padding at the
// image's own depth and converting once, straight into the CHW buffer,
// keeps one float copy of the input instead of four. May throw
// std::bad_alloc and cv::Exception.
void FillWindow(const cv::Mat& image, const ModelConfig& config, int top,
                int left, PreparedImage& prepared) {
  const int height = prepared.padded_height, width = prepared.padded_width;
  cv::Mat padded = MirroredWindow(image, top, left, height, width);
  std::vector<cv::Mat> planes;
  if (padded.channels() == 1) {
    planes.push_back(std::move(padded));  // already its only plane
  } else {
    cv::split(padded, planes);
  }
  padded.release();
  const size_t plane_size = static_cast<size_t>(height) * width;
  prepared.chw.resize(plane_size * planes.size());
  const double unit = ScaleToUnitRange(image.depth());
  for (size_t c = 0; c < planes.size(); ++c) {
    const double mean = PerChannel(config.normalization().mean(), c, 0.0f);
    const double std = PerChannel(config.normalization().std(), c, 1.0f);
    cv::Mat plane(height, width, CV_32F, prepared.chw.data() + c * plane_size);
    // (v * unit - mean) / std in one pass.
    planes[c].convertTo(plane, CV_32F, unit / std, -mean / std);
    planes[c].release();
  }
}

// Runs `prepare`, turning what OpenCV and the allocator throw into a status.
template <typename Fn>
absl::StatusOr<PreparedImage> Contained(Fn prepare) {
  try {
    return prepare();
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

}  // namespace

absl::Status CheckInputChannels(const cv::Mat& image,
                                const ModelConfig& config) {
  const auto& arch = config.architecture();
  if (image.channels() != static_cast<int>(arch.input_channels())) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", image.channels(),
                     " channels; the model takes ", arch.input_channels()));
  }
  return absl::OkStatus();
}

InputSize PaddedInputSize(int64_t height, int64_t width,
                          const ModelConfig& config) {
  const int levels = config.architecture().channels_size();
  const int64_t border = 2 * int64_t{LeadingPad(config)};
  return {NextValidInputSide(height + border, levels),
          NextValidInputSide(width + border, levels)};
}

absl::StatusOr<PreparedImage> Preprocess(const cv::Mat& image,
                                         const ModelConfig& config) {
  if (absl::Status channels = CheckInputChannels(image, config);
      !channels.ok()) {
    return channels;
  }
  return Contained([&] {
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
    FillWindow(image, config, -pad, -pad, prepared);
    return prepared;
  });
}

absl::StatusOr<PreparedImage> PrepareWindow(const cv::Mat& image,
                                            const ModelConfig& config,
                                            const InputWindow& window) {
  if (absl::Status channels = CheckInputChannels(image, config);
      !channels.ok()) {
    return channels;
  }
  const cv::Rect written(window.written_left, window.written_top,
                         window.written_width, window.written_height);
  const cv::Rect input(window.input_left, window.input_top, window.input_width,
                       window.input_height);
  if (written.empty() ||
      (written & cv::Rect(0, 0, image.cols, image.rows)) != written) {
    return absl::InternalError("a window must write pixels of the image");
  }
  return Contained([&] {
    PreparedImage prepared;
    prepared.channels = image.channels();
    prepared.height = window.written_height;
    prepared.width = window.written_width;
    prepared.padded_height = window.input_height;
    prepared.padded_width = window.input_width;
    // Where the written pixels sit in the window's input, as a whole
    // image's sit in its padded input: postprocess cuts them out alike.
    prepared.pad_top = window.written_top - window.input_top;
    prepared.pad_left = window.written_left - window.input_left;
    FillWindow(image, config, window.input_top, window.input_left, prepared);
    return prepared;
  });
}

}  // namespace unet
