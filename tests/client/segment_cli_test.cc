// End to end: the `segment` binary against the real server, as people run
// it on a folder of images.

#include <signal.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/cli/mask_rendering.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/model_writer.h"
#include "tests/server/imaging/dicom_fixtures.h"
#include "tests/server/server_process.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<std::string> kClassNames = {"background", "nucleus",
                                              "membrane"};

class SegmentCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path root = fs::path(::testing::TempDir()) / "cli_models";
    fs::remove_all(root);
    torch::manual_seed(0);
    UNetOptions options;
    options.num_classes = 3;
    options.channels = {2, 4, 8, 16, 32};
    UNet net(options);
    ModelConfig config = DefaultModelConfig(1, 3, {2, 4, 8, 16, 32});
    config.clear_class_names();
    for (const auto& name : kClassNames) config.add_class_names(name);
    ASSERT_TRUE(WriteModelVersion(root, "unet", 1, net, config).ok());
    // One worker that waits for company, so that requests in flight share
    // forward passes.
    auto server = testing::ServerProcess::Start(
        {"--model_root=" + root.string(), "--device=cpu", "--instances=1",
         "--cpu_threads=1", "--max_batch_size=8",
         "--max_queue_delay_us=100000"},
        "cli_server.log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    // Small crops of a real EM slice keep the suite quick.
    const cv::Mat slice = cv::imread(UNET_TEST_DATA_DIR "/isbi_train_0.png",
                                     cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(slice.empty());
    images_ = fs::path(::testing::TempDir()) / "cli_images";
    fs::remove_all(images_);
    fs::create_directories(images_ / "sub");
    for (int i = 0; i < 16; ++i) {
      const fs::path path =
          images_ /
          (i == 15 ? "sub/good_15.png" : absl::StrCat("good_", i, ".png"));
      cv::imwrite(path.string(), slice(cv::Rect(i * 20, i * 10, 96, 80)));
    }
  }

  static void TearDownTestSuite() {
    if (server_ == nullptr) return;
    EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->log();
    delete server_;
  }

  // Runs `segment` with `args`; returns its exit code and fills `output`
  // with its stdout and stderr.
  static int RunCli(const std::vector<std::string>& args, std::string* output) {
    const fs::path log = fs::path(::testing::TempDir()) / "segment_cli.log";
    std::vector<std::string> argv = {SEGMENT_BIN,
                                     "--server=" + server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    const int code = testing::WaitForExit(testing::Spawn(argv, log));
    *output = testing::ReadFile(log);
    return code;
  }

  static fs::path FreshDir(const std::string& name) {
    const fs::path dir = fs::path(::testing::TempDir()) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
  }

  static testing::ServerProcess* server_;
  static fs::path images_;
};

testing::ServerProcess* SegmentCliTest::server_ = nullptr;
fs::path SegmentCliTest::images_;

int CountOf(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(SegmentCliTest, ADirectoryWithBadFilesFailsThoseAndSegmentsTheRest) {
  const fs::path in = FreshDir("cli_mixed_in");
  fs::copy_file(images_ / "good_0.png", in / "good.png");
  fs::create_directories(in / "sub");
  fs::copy_file(images_ / "good_1.png", in / "sub/deeper.png");
  std::ofstream(in / "corrupt.png") << "\x89PNG but not really";
  std::ofstream(in / "empty.png");
  std::ofstream(in / "README.txt") << "not an image, not matched";
  const fs::path out = FreshDir("cli_mixed_out");
  std::string output;
  EXPECT_EQ(RunCli({"--output=" + out.string(), in.string()}, &output), 1)
      << output;
  EXPECT_EQ(cv::imread((out / "good_mask.png").string()).size(),
            cv::Size(96, 80));
  EXPECT_TRUE(fs::exists(out / "sub/deeper_mask.png"));
  EXPECT_FALSE(fs::exists(out / "corrupt_mask.png"));
  EXPECT_EQ(CountOf(output, "FAILED"), 2) << output;
  EXPECT_THAT(output, HasSubstr("FAILED " + (in / "corrupt.png").string() +
                                ": INVALID_ARGUMENT"));
  EXPECT_THAT(output, HasSubstr("FAILED " + (in / "empty.png").string() +
                                ": INVALID_ARGUMENT: the file is empty"));
  EXPECT_THAT(output, HasSubstr("2 ok, 2 failed, 0 skipped"));
  EXPECT_THAT(output, Not(HasSubstr("README")));
  // Plain lines, no terminal control codes, when not on a terminal.
  EXPECT_THAT(output, HasSubstr("ok " + (in / "good.png").string() + " -> " +
                                (out / "good_mask.png").string()));
  EXPECT_THAT(output, Not(HasSubstr("\r")));
  EXPECT_THAT(output, Not(HasSubstr("\033[")));
  for (const auto& entry : fs::recursive_directory_iterator(out)) {
    EXPECT_THAT(entry.path().string(), Not(HasSubstr(".partial")));
  }
}

TEST_F(SegmentCliTest, ARerunSkipsWhatIsDoneUnlessOverwriting) {
  const fs::path out = FreshDir("cli_resume_out");
  const fs::path a = images_ / "good_2.png", b = images_ / "good_3.png";
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), a.string()}, &output), 0)
      << output;
  const auto first_write = fs::last_write_time(out / "good_2_mask.png");
  ASSERT_EQ(
      RunCli({"--output=" + out.string(), a.string(), b.string()}, &output), 0)
      << output;
  EXPECT_THAT(output, HasSubstr("skipped " + a.string() + ": outputs exist"));
  EXPECT_THAT(output, HasSubstr("1 ok, 0 failed, 1 skipped"));
  EXPECT_EQ(fs::last_write_time(out / "good_2_mask.png"), first_write);
  // Asking for another output redoes the image.
  ASSERT_EQ(
      RunCli({"--output=" + out.string(), "--visible", a.string()}, &output),
      0);
  EXPECT_THAT(output, HasSubstr("1 ok, 0 failed, 0 skipped"));
  ASSERT_EQ(RunCli({"--output=" + out.string(), "--overwrite", a.string(),
                    b.string()},
                   &output),
            0);
  EXPECT_THAT(output, HasSubstr("2 ok, 0 failed, 0 skipped"));
}

TEST_F(SegmentCliTest, OverlayAndVisibleMaskShowTheMaskInTheClassColours) {
  const fs::path out = FreshDir("cli_overlay_out");
  const fs::path input = images_ / "good_4.png";
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), "--overlay", "--visible",
                    input.string()},
                   &output),
            0)
      << output;
  const cv::Mat mask =
      cv::imread((out / "good_4_mask.png").string(), cv::IMREAD_UNCHANGED);
  const cv::Mat image = cv::imread(input.string(), cv::IMREAD_GRAYSCALE);
  const cv::Mat overlay = cv::imread((out / "good_4_overlay.png").string());
  const cv::Mat visible =
      cv::imread((out / "good_4_visible.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(mask.size(), image.size());
  ASSERT_EQ(overlay.cols, image.cols);
  EXPECT_EQ(overlay.rows, image.rows + 60);  // the legend: 3 classes
  std::set<int> classes_seen;
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      const int c = mask.at<uint8_t>(y, x);
      classes_seen.insert(c);
      EXPECT_EQ(visible.at<uint8_t>(y, x), c == 0 ? 0 : c == 1 ? 128 : 255);
      const cv::Vec3b colour = client::ClassColour(c);
      for (int k = 0; k < 3; ++k) {
        const double grey = image.at<uint8_t>(y, x);
        const double expected = c == 0 ? grey : 0.55 * grey + 0.45 * colour[k];
        ASSERT_NEAR(overlay.at<cv::Vec3b>(y, x)[k], expected, 0.5)
            << "pixel " << x << "," << y << " class " << c;
      }
    }
  }
  EXPECT_GT(classes_seen.size(), 1u) << "random weights gave one class only";
}

TEST_F(SegmentCliTest, ProbabilitiesAreFloatTiffPagesThatSumToOne) {
  const fs::path out = FreshDir("cli_probabilities_out");
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), "--probabilities",
                    (images_ / "good_5.png").string()},
                   &output),
            0)
      << output;
  std::vector<cv::Mat> pages;
  ASSERT_TRUE(cv::imreadmulti((out / "good_5_probabilities.tif").string(),
                              pages, cv::IMREAD_UNCHANGED));
  ASSERT_EQ(pages.size(), 3u);
  const cv::Mat sum = pages[0] + pages[1] + pages[2];
  double low = 0, high = 0;
  cv::minMaxLoc(sum, &low, &high);
  EXPECT_EQ(pages[0].type(), CV_32FC1);
  EXPECT_EQ(pages[0].size(), cv::Size(96, 80));
  EXPECT_NEAR(low, 1.0, 1e-5);
  EXPECT_NEAR(high, 1.0, 1e-5);
}

TEST_F(SegmentCliTest, JobsInFlightShareTheServersForwardPasses) {
  const fs::path out = FreshDir("cli_jobs_out");
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), "--jobs=8", images_.string()},
                   &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("16 ok, 0 failed"));
  EXPECT_TRUE(fs::exists(out / "sub/good_15_mask.png"));
  std::smatch largest;
  ASSERT_TRUE(
      std::regex_search(output, largest, std::regex("largest batch ([0-9]+)")));
  EXPECT_GT(std::stoi(largest[1]), 1) << output;
}

TEST_F(SegmentCliTest, TileAndTtaGiveMasksOfTheImagesSize) {
  const fs::path out = FreshDir("cli_tile_out");
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), "--tile", "--tta",
                    (images_ / "good_8.png").string()},
                   &output),
            0)
      << output;
  EXPECT_EQ(cv::imread((out / "good_8_mask.png").string()).size(),
            cv::Size(96, 80));
}

TEST_F(SegmentCliTest, ADicomInputGetsADicomSegmentation) {
  const fs::path in = FreshDir("cli_dicom_in");
  const cv::Mat crop =
      cv::imread((images_ / "good_2.png").string(), cv::IMREAD_GRAYSCALE);
  ASSERT_TRUE(crop.isContinuous());
  std::ofstream(in / "slice.dcm", std::ios::binary) << testing::MakeDicom(
      testing::EightBitSlice(crop.rows, crop.cols, crop.data));
  fs::copy_file(images_ / "good_3.png", in / "plain.png");
  const fs::path out = FreshDir("cli_dicom_out");
  std::string output;
  ASSERT_EQ(RunCli({"--output=" + out.string(), in.string()}, &output), 0)
      << output;
  const std::string seg = testing::ReadFile(out / "slice_seg.dcm");
  ASSERT_GT(seg.size(), 132u);
  EXPECT_EQ(seg.substr(128, 4), "DICM");
  EXPECT_NE(seg.find("1.2.840.10008.5.1.4.1.1.66.4"), std::string::npos)
      << "not a Segmentation Storage object";
  EXPECT_FALSE(fs::exists(out / "slice_mask.png"));
  EXPECT_TRUE(fs::exists(out / "plain_mask.png"));
  // Resumable like any output.
  ASSERT_EQ(RunCli({"--output=" + out.string(), in.string()}, &output), 0);
  EXPECT_THAT(output, HasSubstr("2 skipped"));
}

TEST_F(SegmentCliTest, PathsCanComeOnStdin) {
  const fs::path out = FreshDir("cli_stdin_out");
  const fs::path log = fs::path(::testing::TempDir()) / "cli_stdin.log";
  const std::string command = absl::StrCat(
      "printf '%s\\n' ", (images_ / "good_6.png").string(), " ",
      (images_ / "missing.png").string(), " | ", SEGMENT_BIN,
      " --server=", server_->address(), " --output=", out.string(), " -");
  const int code =
      testing::WaitForExit(testing::Spawn({"/bin/sh", "-c", command}, log));
  const std::string output = testing::ReadFile(log);
  EXPECT_EQ(code, 1) << output;
  EXPECT_TRUE(fs::exists(out / "good_6_mask.png"));
  EXPECT_THAT(output, HasSubstr("missing.png: NOT_FOUND"));
}

TEST_F(SegmentCliTest, ModelsAndInfoDescribeTheServer) {
  std::string output;
  ASSERT_EQ(RunCli({"models"}, &output), 0) << output;
  EXPECT_EQ(output, "unet (default): v1 available\n");
  ASSERT_EQ(RunCli({"info"}, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("unet v1 (libtorch) on cpu"));
  EXPECT_THAT(output,
              HasSubstr("classes: 0 background, 1 nucleus, 2 membrane"));
  EXPECT_THAT(output, HasSubstr("batches up to 8"));
  EXPECT_EQ(RunCli({"--model=nope", "info"}, &output), 1);
  EXPECT_THAT(output, HasSubstr("GetModelInfo: NOT_FOUND"));
}

TEST_F(SegmentCliTest, UsageErrorsExitTwoAndServerErrorsOne) {
  std::string output;
  const std::string image = (images_ / "good_7.png").string();
  EXPECT_EQ(RunCli({image}, &output), 2);              // no --output
  EXPECT_EQ(RunCli({"--output=/tmp/x"}, &output), 2);  // no input
  EXPECT_EQ(RunCli({"--output=/tmp/x", "--jobs=-1", image}, &output), 2);
  const std::string out = FreshDir("cli_errors_out").string();
  EXPECT_EQ(RunCli({"--output=" + out, "--deadline_ms=1", image}, &output), 1);
  EXPECT_THAT(output, HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_EQ(RunCli({"--output=" + out, "--model=nope", image}, &output), 1);
  EXPECT_THAT(output, HasSubstr("good_7.png: NOT_FOUND"));
}

}  // namespace
}  // namespace unet
