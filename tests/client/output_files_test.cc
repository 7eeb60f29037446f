#include "client/cli/output_files.h"

#include <cstring>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "client/cli/atomic_file.h"
#include "gtest/gtest.h"

namespace unet::client {
namespace {

namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "output_files" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(OutputFilesTest, PathsMirrorTheInputAndOnlyWhatIsAsked) {
  OutputKinds kinds;
  kinds.overlay = true;
  kinds.probabilities = true;
  const OutputPaths paths = OutputPathsFor("out", "sub/a", kinds);
  EXPECT_EQ(paths.mask, fs::path("out/sub/a_mask.png"));
  EXPECT_EQ(paths.overlay, fs::path("out/sub/a_overlay.png"));
  EXPECT_TRUE(paths.visible.empty());
  EXPECT_EQ(paths.probabilities, fs::path("out/sub/a_probabilities.tif"));
  EXPECT_EQ(paths.All().size(), 3u);
}

TEST(OutputFilesTest, AllOutputsMustExistToSkip) {
  const fs::path dir = FreshDir("exist");
  OutputKinds kinds;
  kinds.visible = true;
  const OutputPaths paths = OutputPathsFor(dir, "a", kinds);
  EXPECT_FALSE(AllOutputsExist(paths));
  ASSERT_TRUE(WriteBytesAtomically(paths.mask, "m").ok());
  EXPECT_FALSE(AllOutputsExist(paths));
  ASSERT_TRUE(WriteBytesAtomically(paths.visible, "v").ok());
  EXPECT_TRUE(AllOutputsExist(paths));
}

TEST(OutputFilesTest, AFailedWriteLeavesNothingBehind) {
  const fs::path dir = FreshDir("atomic");
  const fs::path target = dir / "deep/a_mask.png";
  const absl::Status failed =
      WriteAtomically(target, [](const fs::path& temporary) {
        std::ofstream(temporary) << "half";
        return absl::InternalError("disk full");
      });
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(fs::is_empty(dir / "deep"));  // no temporary left
  ASSERT_TRUE(WriteBytesAtomically(target, "whole").ok());
  std::ifstream written(target);
  std::string contents;
  written >> contents;
  EXPECT_EQ(contents, "whole");
}

TEST(OutputFilesTest, ProbabilitiesAreOneFloatPagePerClass) {
  const fs::path path = FreshDir("tiff") / "p_probabilities.tif";
  segmentation::v1::Probabilities probabilities;
  probabilities.set_width(3);
  probabilities.set_height(2);
  probabilities.set_num_classes(2);
  std::vector<float> values = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.625f,
                               0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.375f};
  probabilities.set_data(std::string(reinterpret_cast<char*>(values.data()),
                                     values.size() * sizeof(float)));
  ASSERT_TRUE(WriteProbabilitiesTiff(path, probabilities).ok());
  std::vector<cv::Mat> pages;
  ASSERT_TRUE(cv::imreadmulti(path.string(), pages, cv::IMREAD_UNCHANGED));
  ASSERT_EQ(pages.size(), 2u);
  for (int c = 0; c < 2; ++c) {
    ASSERT_EQ(pages[c].type(), CV_32FC1);
    ASSERT_EQ(pages[c].size(), cv::Size(3, 2));
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(pages[c].at<float>(i / 3, i % 3), values[c * 6 + i]);
    }
  }
  probabilities.mutable_data()->resize(5);
  EXPECT_EQ(WriteProbabilitiesTiff(path, probabilities).code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace unet::client
