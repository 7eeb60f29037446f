#include "model/training/validation.h"

#include <cmath>
#include <opencv2/core.hpp>

#include "gtest/gtest.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

// A forward pass without a network, with the seed's geometry: class 1's
// logit at each output pixel is the input at that pixel, plus `slope` times
// its column (0: every view of an image gives the same answer).
ForwardPass PixelwisePass(float slope) {
  return [slope](const FloatTensor& input) -> absl::StatusOr<FloatTensor> {
    const int margin = ContextMargin(5);
    const int64_t in_h = input.shape[2], in_w = input.shape[3];
    const int64_t h = in_h - 2 * margin, w = in_w - 2 * margin;
    FloatTensor out{{1, 2, h, w}, std::vector<float>(2 * h * w, 0.0f)};
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        out.values[h * w + y * w + x] =
            input.values[(y + margin) * in_w + x + margin] - 0.5f +
            slope * (x - w / 2.0f);
      }
    }
    return out;
  };
}

std::vector<Sample> RandomSamples() {
  std::vector<Sample> samples(2);
  for (Sample& sample : samples) {
    sample.image.create(60, 90, CV_8UC1);
    cv::randu(sample.image, 0, 256);
    sample.label = sample.image > 100;
  }
  return samples;
}

TEST(ValidationTest, AveragingViewsOfAnInvariantModelChangesNothing) {
  const ModelConfig config = DefaultModelConfig(1, 2, {2, 4, 8, 16, 32});
  const std::vector<Sample> samples = RandomSamples();
  const auto plain = ScoreAsServed(samples, config, PixelwisePass(0));
  const auto averaged = ScoreAsServed(samples, config, PixelwisePass(0),
                                      /*test_time_augmentation=*/true);
  ASSERT_TRUE(plain.ok() && averaged.ok());
  for (const auto& [name, value] : *plain) {
    EXPECT_NEAR(averaged->at(name), value, 1e-6) << name;
  }
  // A model that is not invariant scores otherwise averaged.
  const auto tilted =
      ScoreAsServed(samples, config, PixelwisePass(0.02f), false);
  const auto tilted_averaged =
      ScoreAsServed(samples, config, PixelwisePass(0.02f), true);
  EXPECT_GT(
      std::abs(tilted->at("dice_cell") - tilted_averaged->at("dice_cell")),
      0.01);
}

}  // namespace
}  // namespace unet
