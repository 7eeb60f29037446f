#include "model/training/segmentation_metrics.h"

#include "gtest/gtest.h"

namespace unet {
namespace {

cv::Mat Row(std::vector<int32_t> ids) {
  return cv::Mat(1, static_cast<int>(ids.size()), CV_32S, ids.data()).clone();
}

TEST(RandFScoreTest, SameSegmentsUnderOtherIdsScoreOne) {
  EXPECT_DOUBLE_EQ(RandFScore(Row({1, 1, 0, 2, 2}), Row({7, 7, 0, 3, 3})), 1);
}

TEST(RandFScoreTest, IgnoresWhatTheProposalDoesOnTruthBackground) {
  EXPECT_DOUBLE_EQ(RandFScore(Row({1, 1, 0, 2, 2}), Row({7, 7, 9, 3, 3})), 1);
}

TEST(RandFScoreTest, AMergeLosesPrecision) {
  // Truth joins 2 pairs; the merged proposal joins 6, of which 2 are right:
  // precision 1/3, recall 1, F = 0.5.
  EXPECT_DOUBLE_EQ(RandFScore(Row({1, 1, 0, 2, 2}), Row({5, 5, 5, 5, 5})), 0.5);
}

TEST(RandFScoreTest, ASplitLosesRecall) {
  // Each truth pair split by a background (singleton) pixel: recall 0.
  EXPECT_DOUBLE_EQ(RandFScore(Row({1, 1, 0, 2, 2}), Row({1, 0, 0, 2, 0})), 0);
  // One of the two truth pairs kept: precision 1, recall 1/2, F = 2/3.
  EXPECT_DOUBLE_EQ(RandFScore(Row({1, 1, 0, 2, 2}), Row({1, 1, 0, 2, 0})),
                   2.0 / 3);
}

TEST(RandFScoreTest, NoTruthSegmentScoresOne) {
  EXPECT_DOUBLE_EQ(RandFScore(Row({0, 0, 0}), Row({1, 1, 1})), 1);
}

// A 4x4 label: a membrane column (class 1) between two cells (class 0).
cv::Mat TwoCells() {
  cv::Mat label(4, 4, CV_8U, cv::Scalar(0));
  label.col(1).setTo(1);
  return label;
}

cv::Mat ConfidentProbability(const cv::Mat& mask) {
  cv::Mat probability(mask.size(), CV_32F, cv::Scalar(0.95f));
  probability.setTo(0.05f, mask == 1);
  return probability;
}

TEST(SegmentationScorerTest, APerfectSegmentationHasNoError) {
  SegmentationScorer scorer;
  const cv::Mat label = TwoCells();
  scorer.Add(label, ConfidentProbability(label), label);
  const auto metrics = scorer.Metrics();
  EXPECT_DOUBLE_EQ(metrics.at("pixel_error"), 0);
  EXPECT_DOUBLE_EQ(metrics.at("rand_error"), 0);
  EXPECT_DOUBLE_EQ(metrics.at("thinned_rand_error"), 0);
  EXPECT_DOUBLE_EQ(metrics.at("misclassified_fraction"), 0);
  EXPECT_DOUBLE_EQ(metrics.at("dice_cell"), 1);
  EXPECT_DOUBLE_EQ(metrics.at("iou_membrane"), 1);
}

TEST(SegmentationScorerTest, ABrokenMembraneMergesCellsAndCostsPixels) {
  SegmentationScorer scorer;
  const cv::Mat label = TwoCells();
  cv::Mat mask = label.clone();
  mask.at<uint8_t>(2, 1) = 0;  // a gap in the membrane
  scorer.Add(mask, ConfidentProbability(mask), label);
  const auto metrics = scorer.Metrics();
  EXPECT_DOUBLE_EQ(metrics.at("misclassified_fraction"), 1.0 / 16);
  // Cell pixels: 12 true, 13 predicted, 12 right: F = 24 / 25.
  EXPECT_NEAR(metrics.at("pixel_error"), 1 - 24.0 / 25, 1e-12);
  EXPECT_NEAR(metrics.at("dice_cell"), 24.0 / 25, 1e-12);
  EXPECT_NEAR(metrics.at("iou_membrane"), 3.0 / 4, 1e-12);
  // Truth: cells of 4 and 8 pixels join 6 + 28 = 34 pairs; the merged
  // proposal joins all 12 truth-foreground pixels, 66 pairs: precision
  // 34/66, recall 1.
  const double precision = 34.0 / 66;
  EXPECT_NEAR(metrics.at("rand_error"), 1 - 2 * precision / (precision + 1),
              1e-12);
}

TEST(SegmentationScorerTest, ThinningForgivesAThickButClosedMembrane) {
  // Truth: cells in columns 0-1 and 4-7 of an 8-wide image, membrane in
  // columns 2-3. The prediction thickens the membrane to columns 1-4: no
  // cell is merged, but the plain Rand score counts the truth pixels under
  // the thick membrane as singletons.
  cv::Mat label(4, 8, CV_8U, cv::Scalar(0));
  label.colRange(2, 4).setTo(1);
  cv::Mat mask(4, 8, CV_8U, cv::Scalar(0));
  mask.colRange(1, 5).setTo(1);
  SegmentationScorer scorer;
  scorer.Add(mask, ConfidentProbability(mask), label);
  const auto metrics = scorer.Metrics();
  EXPECT_GT(metrics.at("rand_error"), 0.1);
  // Thinned, columns 1 and 4 rejoin their cells: the split is the truth's.
  EXPECT_DOUBLE_EQ(metrics.at("thinned_rand_error"), 0);
}

TEST(SegmentationScorerTest, ThinningDoesNotHealABrokenMembrane) {
  SegmentationScorer scorer;
  const cv::Mat label = TwoCells();
  cv::Mat mask = label.clone();
  mask.at<uint8_t>(2, 1) = 0;  // a gap in the membrane merges the cells
  scorer.Add(mask, ConfidentProbability(mask), label);
  const auto metrics = scorer.Metrics();
  EXPECT_DOUBLE_EQ(metrics.at("thinned_rand_error"), metrics.at("rand_error"));
  EXPECT_GT(metrics.at("thinned_rand_error"), 0.3);
}

TEST(SegmentationScorerTest, PixelErrorTakesTheBestThreshold) {
  SegmentationScorer scorer;
  const cv::Mat label = TwoCells();
  // Under-confident cells: only thresholds below 0.3 find them all.
  cv::Mat probability(label.size(), CV_32F, cv::Scalar(0.25f));
  probability.setTo(0.05f, label == 1);
  scorer.Add(label, probability, label);
  EXPECT_DOUBLE_EQ(scorer.Metrics().at("pixel_error"), 0);
}

}  // namespace
}  // namespace unet
