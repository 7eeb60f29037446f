#include "client/cli/progress.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace unet::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ProgressTest, QuantilesByNearestRank) {
  EXPECT_EQ(Quantile({}, 0.5), 0);
  EXPECT_EQ(Quantile({5, 1, 3, 2, 4}, 0.5), 3);
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  EXPECT_EQ(Quantile(hundred, 0.95), 95);
  EXPECT_EQ(Quantile(hundred, 1.0), 100);
}

TEST(ProgressTest, TheBarShowsDoneRateEtaAndFailures) {
  EXPECT_EQ(FormatProgressBar(25, 100, 5.0, 2),
            "[######------------------] 25/100  5.0 img/s  ETA 0:15  failed 2");
  EXPECT_EQ(FormatProgressBar(100, 100, 5.0, 0),
            "[########################] 100/100  5.0 img/s");
}

TEST(ProgressTest, PlainLinesOffATerminal) {
  double now = 0;
  std::ostringstream results, messages;
  ProgressReporter progress(3, /*bar=*/false, results, messages,
                            [&] { return now; });
  now = 1;
  progress.Succeeded("a.png", "out/a_mask.png", 120, 2);
  progress.Failed("b.png", absl::InvalidArgumentError("not an image"));
  progress.Skipped("c.png");
  now = 2;
  const RunSummary summary = progress.Finish();
  EXPECT_EQ(results.str(),
            "ok a.png -> out/a_mask.png  120.0 ms  batch 2\n"
            "skipped c.png: outputs exist\n"
            "1 ok, 1 failed, 1 skipped in 2.0 s: 1.00 images/s, latency p50 "
            "120 ms, p95 120 ms, largest batch 2\n");
  EXPECT_EQ(messages.str(), "FAILED b.png: INVALID_ARGUMENT: not an image\n");
  EXPECT_EQ(summary.largest_batch, 2);
}

TEST(ProgressTest, OnATerminalTheBarIsRedrawnAndFailuresPrintAboveIt) {
  double now = 0;
  std::ostringstream results, messages;
  ProgressReporter progress(2, /*bar=*/true, results, messages,
                            [&] { return now; });
  now = 1;
  progress.Failed("b.png", absl::NotFoundError("gone"));
  now = 2;
  progress.Succeeded("a.png", "out/a_mask.png", 50, 1);
  progress.Finish();
  const std::string shown = messages.str();
  EXPECT_THAT(shown, HasSubstr("\r\033[KFAILED b.png: NOT_FOUND: gone\n"));
  EXPECT_THAT(shown, HasSubstr("[############------------] 1/2  1.0 img/s  "
                               "ETA 0:01  failed 1"));
  EXPECT_THAT(shown, HasSubstr("\r\033[K[########################] 2/2"));
  EXPECT_THAT(results.str(), Not(HasSubstr("ok a.png")));
  EXPECT_THAT(results.str(), HasSubstr("1 ok, 1 failed, 0 skipped"));
}

}  // namespace
}  // namespace unet::client
