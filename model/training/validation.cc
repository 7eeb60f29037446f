#include "model/training/validation.h"

#include "common/status_macros.h"
#include "model/imaging/postprocess.h"
#include "model/imaging/preprocess.h"
#include "model/imaging/test_time_views.h"
#include "model/training/dataset.h"
#include "model/training/segmentation_metrics.h"

namespace unet {

namespace {

// Segments one view of an image as the server does: its probabilities.
absl::StatusOr<Segmentation> SegmentView(const cv::Mat& view,
                                         const ModelConfig& config,
                                         const ForwardPass& forward) {
  ASSIGN_OR_RETURN(PreparedImage prepared, Preprocess(view, config));
  ASSIGN_OR_RETURN(const FloatTensor logits,
                   forward({{1, prepared.channels, prepared.padded_height,
                             prepared.padded_width},
                            std::move(prepared.chw)}));
  return ExtractSegmentation(logits.values.data(),
                             config.architecture().num_classes(),
                             logits.shape[2], logits.shape[3], prepared,
                             /*with_probabilities=*/true);
}

// Averages the soft-max of the image's views as the server's tiled
// requests do.
absl::StatusOr<Segmentation> SegmentViews(const cv::Mat& image,
                                          const ModelConfig& config,
                                          const ForwardPass& forward) {
  const int classes = config.architecture().num_classes();
  Segmentation mean;
  mean.probabilities.assign(classes * image.total(), 0.0f);
  for (int v = 0; v < kTestTimeViews; ++v) {
    ASSIGN_OR_RETURN(const Segmentation view,
                     SegmentView(ViewOf(image, v), config, forward));
    AddUnviewed(view.probabilities.data(),
                cv::Rect(0, 0, view.mask.cols, view.mask.rows), v, classes,
                image.size(), mean.probabilities.data());
  }
  mean.mask.create(image.size(), CV_8U);
  MeanOverViews(mean.probabilities.data(), classes, kTestTimeViews, mean.mask);
  return mean;
}

}  // namespace

absl::StatusOr<std::map<std::string, double>> ScoreAsServed(
    const std::vector<Sample>& samples, const ModelConfig& config,
    const ForwardPass& forward, bool test_time_augmentation) {
  SegmentationScorer scorer;
  for (const Sample& sample : samples) {
    ASSIGN_OR_RETURN(const Segmentation segmentation,
                     test_time_augmentation
                         ? SegmentViews(sample.image, config, forward)
                         : SegmentView(sample.image, config, forward));
    const cv::Mat cell_probability(
        sample.label.size(), CV_32F,
        const_cast<float*>(segmentation.probabilities.data()) +
            kCellClass * sample.label.total());
    scorer.Add(segmentation.mask, cell_probability, sample.label);
  }
  return scorer.Metrics();
}

}  // namespace unet
