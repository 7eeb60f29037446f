#include "model/training/dataset.h"

#include <algorithm>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/training/weight_map.h"

namespace unet {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<Sample>> LoadLabelledImages(const fs::path& dir) {
  std::vector<std::pair<int, fs::path>> images;
  std::error_code error;
  for (fs::directory_iterator it(dir / "image", error), end;
       !error && it != end; it.increment(error)) {
    int index = 0;
    if (it->path().extension() == ".png" &&
        absl::SimpleAtoi(it->path().stem().string(), &index)) {
      images.emplace_back(index, it->path());
    }
  }
  if (error || images.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no image/N.png files under ", dir.string()));
  }
  std::sort(images.begin(), images.end());
  std::vector<Sample> samples;
  for (const auto& [index, image_path] : images) {
    const fs::path label_path = dir / "label" / image_path.filename();
    Sample sample;
    sample.image = cv::imread(image_path.string(), cv::IMREAD_GRAYSCALE);
    const cv::Mat label = cv::imread(label_path.string(), cv::IMREAD_GRAYSCALE);
    if (sample.image.empty() || label.empty() ||
        sample.image.size() != label.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read a matching pair ", image_path.string(),
                       " and ", label_path.string()));
    }
    const cv::Mat cells = label != 0;
    sample.label = cv::Mat(label.size(), CV_8U, cv::Scalar(kMembraneClass));
    sample.label.setTo(kCellClass, cells);
    sample.weights = BorderWeightMap(cells, {});
    samples.push_back(std::move(sample));
  }
  return samples;
}

}  // namespace unet
