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

// A stretch of a window's rows or columns taken from one stretch of the
// image's: forwards, or backwards where the window runs into a mirrored
// border.
struct Run {
  int to = 0, from = 0, length = 0;
  int step = 1;  // 1 or -1: from, from + step, ...
};

// The runs that make up the `size` rows (or columns) of the endlessly
// mirrored image starting at `start` (negative: in the mirrored border), of
// an image `image_size` long. REFLECT_101 mirrors about the edge pixel, as
// the paper extrapolates, and reflects again where the border is wider than
// the image. Each position is mapped against the whole image, so that every
// window of one image agrees with every other (copyMakeBorder on a part of
// the image would reflect about the part's edges when the border is wider
// than the part).
std::vector<Run> MirroredRuns(int start, int size, int image_size) {
  std::vector<Run> runs;
  for (int i = 0; i < size; ++i) {
    const int from =
        cv::borderInterpolate(start + i, image_size, cv::BORDER_REFLECT_101);
    if (!runs.empty()) {
      Run& last = runs.back();
      const int next = last.from + last.step * last.length;
      if (from == next) {
        ++last.length;
        continue;
      }
      if (last.length == 1 && from == last.from - 1) {
        last.step = -1;
        ++last.length;
        continue;
      }
    }
    runs.push_back({i, from, 1, 1});
  }
  return runs;
}

// The first and one past the last position `runs` take from.
std::pair<int, int> Span(const std::vector<Run>& runs) {
  int low = runs.front().from, high = low + 1;
  for (const Run& run : runs) {
    const int last = run.from + run.step * (run.length - 1);
    low = std::min({low, run.from, last});
    high = std::max({high, run.from + 1, last + 1});
  }
  return {low, high};
}

// Fills `prepared.chw` with the `prepared.padded_height` x `padded_width`
// window at (top, left) of the mirrored image, normalised:
// (value * unit - mean) / std. The part of the image the window takes is
// normalised once, a plane at a time (OpenCV's vectorised conversion), and
// then copied run by run into the network's input: besides the input, one
// float plane of that part is held while it lasts. May throw
// std::bad_alloc and cv::Exception.
void FillWindow(const cv::Mat& image, const ModelConfig& config, int top,
                int left, PreparedImage& prepared) {
  const int height = prepared.padded_height, width = prepared.padded_width;
  const std::vector<Run> rows = MirroredRuns(top, height, image.rows);
  const std::vector<Run> columns = MirroredRuns(left, width, image.cols);
  const auto [first_row, end_row] = Span(rows);
  const auto [first_column, end_column] = Span(columns);
  const cv::Mat taken =
      image(cv::Range(first_row, end_row), cv::Range(first_column, end_column));
  std::vector<cv::Mat> planes;
  if (taken.channels() == 1) {
    planes.push_back(taken);  // already its only plane
  } else {
    cv::split(taken, planes);
  }
  const size_t plane_size = static_cast<size_t>(height) * width;
  prepared.chw.resize(plane_size * planes.size());
  const double unit = ScaleToUnitRange(image.depth());
  cv::Mat normalised;
  for (size_t c = 0; c < planes.size(); ++c) {
    const double mean = PerChannel(config.normalization().mean(), c, 0.0f);
    const double std = PerChannel(config.normalization().std(), c, 1.0f);
    planes[c].convertTo(normalised, CV_32F, unit / std, -mean / std);
    float* plane = prepared.chw.data() + c * plane_size;
    for (const Run& row_run : rows) {
      for (int r = 0; r < row_run.length; ++r) {
        const float* source =
            normalised.ptr<float>(row_run.from + row_run.step * r - first_row);
        float* row = plane + static_cast<size_t>(row_run.to + r) * width;
        for (const Run& run : columns) {
          const float* from = source + (run.from - first_column);
          if (run.step == 1) {
            std::memcpy(row + run.to, from, run.length * sizeof(float));
          } else {
            for (int i = 0; i < run.length; ++i) row[run.to + i] = from[-i];
          }
        }
      }
    }
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
  if (input.empty()) return absl::InternalError("a window must take pixels");
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
