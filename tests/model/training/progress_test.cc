#include "model/training/progress.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace unet {
namespace {

TEST(FormatDurationTest, PicksTheLargestUsefulUnits) {
  EXPECT_EQ(FormatDuration(44.6), "45s");
  EXPECT_EQ(FormatDuration(200), "3m20s");
  EXPECT_EQ(FormatDuration(7500), "2h05m");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(ProgressLineTest, ShowsStepLossSpeedAndEta) {
  const ProgressSnapshot snapshot{500, 2000, 0.25151, 5.0};
  EXPECT_EQ(ProgressLine(snapshot, 8),
            "[##......] 500/2000  loss 0.2515  5.00 img/s  ETA 5m00s");
  EXPECT_EQ(ProgressLine(snapshot, 0),
            "500/2000  loss 0.2515  5.00 img/s  ETA 5m00s");
}

// Everything `report` writes through a reporter.
template <typename Report>
std::string Output(bool terminal, Report report) {
  std::FILE* file = std::tmpfile();
  {
    ProgressReporter reporter(file, terminal, /*plain_every=*/2);
    report(reporter);
  }
  std::rewind(file);
  std::string text;
  for (int c; (c = std::fgetc(file)) != EOF;) text.push_back(c);
  std::fclose(file);
  return text;
}

TEST(ProgressReporterTest, PrintsPlainLinesWhenNotATerminal) {
  const std::string text = Output(false, [](ProgressReporter& reporter) {
    for (int step = 1; step <= 3; ++step) {
      reporter.Update({step, 3, 0.5, 2.0});
    }
    reporter.Message("done");
  });
  EXPECT_EQ(text,
            "step 2/3  loss 0.5000  2.00 img/s  ETA 1s\n"
            "step 3/3  loss 0.5000  2.00 img/s  ETA 0s\n"
            "done\n");
}

TEST(ProgressReporterTest, RedrawsOneLineOnATerminal) {
  const std::string text = Output(true, [](ProgressReporter& reporter) {
    reporter.Update({1, 2, 0.5, 1.0});
    reporter.Message("checkpoint");
    reporter.Update({2, 2, 0.5, 1.0});
  });
  EXPECT_EQ(text.find('\n'), text.find("checkpoint") + 10);  // after message
  EXPECT_EQ(text.front(), '\r');
  EXPECT_NE(text.find("\r\33[Kcheckpoint\n"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');  // the finished bar stays
}

}  // namespace
}  // namespace unet
