#include "model/training/validation.h"

#include "common/status_macros.h"
#include "model/imaging/postprocess.h"
#include "model/imaging/preprocess.h"
#include "model/training/dataset.h"
#include "model/training/segmentation_metrics.h"

namespace unet {

absl::StatusOr<std::map<std::string, double>> ScoreAsServed(
    const std::vector<Sample>& samples, const ModelConfig& config,
    const ForwardPass& forward) {
  const int classes = config.architecture().num_classes();
  SegmentationScorer scorer;
  for (const Sample& sample : samples) {
    ASSIGN_OR_RETURN(PreparedImage prepared, Preprocess(sample.image, config));
    ASSIGN_OR_RETURN(const FloatTensor logits,
                     forward({{1, prepared.channels, prepared.padded_height,
                               prepared.padded_width},
                              std::move(prepared.chw)}));
    ASSIGN_OR_RETURN(
        Segmentation segmentation,
        ExtractSegmentation(logits.values.data(), classes, logits.shape[2],
                            logits.shape[3], prepared,
                            /*with_probabilities=*/true));
    const cv::Mat cell_probability(
        sample.label.size(), CV_32F,
        segmentation.probabilities.data() + kCellClass * sample.label.total());
    scorer.Add(segmentation.mask, cell_probability, sample.label);
  }
  return scorer.Metrics();
}

}  // namespace unet
