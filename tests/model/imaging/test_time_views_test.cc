#include "model/imaging/test_time_views.h"

#include <set>

#include "gtest/gtest.h"

namespace unet {
namespace {

bool Equal(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && cv::countNonZero(a != b) == 0;
}

TEST(TestTimeViewsTest, EightDistinctViewsOfAnAsymmetricImage) {
  cv::Mat image(5, 7, CV_8UC1);
  cv::randu(image, 0, 256);
  std::vector<cv::Mat> views;
  for (int v = 0; v < kTestTimeViews; ++v) {
    const cv::Mat view = ViewOf(image, v);
    EXPECT_EQ(view.size(), v % 2 == 0 ? image.size() : cv::Size(5, 7)) << v;
    for (const cv::Mat& other : views) EXPECT_FALSE(Equal(view, other)) << v;
    views.push_back(view);
  }
  EXPECT_TRUE(Equal(views[0], image));
}

TEST(TestTimeViewsTest, EveryPartOfAViewGoesBackToItsPlace) {
  cv::Mat image(9, 13, CV_32FC1);
  cv::randu(image, 0.0f, 1.0f);
  const cv::RNG rng_seed(3);
  cv::RNG rng = rng_seed;
  for (int v = 0; v < kTestTimeViews; ++v) {
    const cv::Mat view = ViewOf(image, v);
    for (int trial = 0; trial < 20; ++trial) {
      const int x = rng.uniform(0, view.cols), y = rng.uniform(0, view.rows);
      const cv::Rect part(x, y, rng.uniform(1, view.cols - x + 1),
                          rng.uniform(1, view.rows - y + 1));
      const cv::Rect back = UnviewRect(part, v, image.size());
      ASSERT_TRUE(Equal(UnviewBlock(view(part).clone(), v), image(back)))
          << "view " << v << " part " << part << " back " << back;
    }
  }
}

}  // namespace
}  // namespace unet
