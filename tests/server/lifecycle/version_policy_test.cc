#include "server/lifecycle/version_policy.h"

#include "gtest/gtest.h"

namespace unet {
namespace {

using Versions = std::vector<int64_t>;

TEST(ParseVersionPinsTest, ReadsModelsAndVersions) {
  const auto pins = ParseVersionPins("unet:3,5;other:1");
  ASSERT_TRUE(pins.ok()) << pins.status();
  EXPECT_EQ(pins->at("unet"), (std::set<int64_t>{3, 5}));
  EXPECT_EQ(pins->at("other"), (std::set<int64_t>{1}));
  EXPECT_TRUE(ParseVersionPins("")->empty());
}

TEST(ParseVersionPinsTest, RefusesMalformedPins) {
  for (const char* bad :
       {"unet", "unet:", ":3", "unet:0", "unet:x", "unet:1:2"}) {
    EXPECT_EQ(ParseVersionPins(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(CandidateVersionsTest, NewestFirstWithoutFailures) {
  EXPECT_EQ(CandidateVersions("unet", {1, 3, 2}, {}, {}), (Versions{3, 2, 1}));
  EXPECT_EQ(CandidateVersions("unet", {1, 3, 2}, {3}, {}), (Versions{2, 1}));
  EXPECT_TRUE(CandidateVersions("unet", {}, {}, {}).empty());
}

TEST(CandidateVersionsTest, PinsChooseTheVersions) {
  const VersionPins pins = {{"unet", {1, 3}}};
  EXPECT_EQ(CandidateVersions("unet", {1, 2, 3, 4}, {}, pins),
            (Versions{3, 1}));
  EXPECT_EQ(CandidateVersions("unet", {1, 2, 4}, {}, pins), (Versions{1}));
  EXPECT_EQ(CandidateVersions("other", {1, 2}, {}, pins), (Versions{2, 1}));
}

const absl::Time kNow = absl::FromUnixSeconds(1'000'000);
const VersionFiles kOldFiles = {{"model.json", 10, kNow - absl::Hours(1)},
                                {"model.pt", 20, kNow - absl::Hours(1)}};

TEST(IsTransientLoadFailureTest, IoAndMemoryErrorsCanPass) {
  EXPECT_TRUE(
      IsTransientLoadFailure(absl::UnavailableError("io"), kOldFiles, kNow));
  EXPECT_TRUE(IsTransientLoadFailure(absl::ResourceExhaustedError("oom"),
                                     kOldFiles, kNow));
  EXPECT_FALSE(
      IsTransientLoadFailure(absl::DataLossError("corrupt"), kOldFiles, kNow));
  EXPECT_FALSE(IsTransientLoadFailure(absl::InvalidArgumentError("json"),
                                      kOldFiles, kNow));
}

TEST(IsTransientLoadFailureTest, AnyErrorOfFreshFilesCanPass) {
  VersionFiles files = kOldFiles;
  files[1].mtime = kNow - kSettleWindow + absl::Seconds(1);
  EXPECT_TRUE(
      IsTransientLoadFailure(absl::DataLossError("corrupt"), files, kNow));
  files[1].mtime = kNow + absl::Seconds(1);  // clock skew
  EXPECT_TRUE(
      IsTransientLoadFailure(absl::DataLossError("corrupt"), files, kNow));
  files[1].mtime = kNow - kSettleWindow;
  EXPECT_FALSE(
      IsTransientLoadFailure(absl::DataLossError("corrupt"), files, kNow));
}

TEST(RecordLoadFailureTest, BackoffDoublesForTheSameFilesUpToTheCap) {
  const absl::Status io = absl::UnavailableError("io");
  LoadFailure failure = RecordLoadFailure(io, kOldFiles, kNow, nullptr);
  EXPECT_TRUE(failure.transient);
  EXPECT_EQ(failure.backoff, kFirstRetryBackoff);
  EXPECT_EQ(failure.retry_at, kNow + kFirstRetryBackoff);
  std::vector<absl::Duration> backoffs;
  for (int i = 0; i < 12; ++i) {
    failure = RecordLoadFailure(io, kOldFiles, kNow, &failure);
    backoffs.push_back(failure.backoff);
  }
  EXPECT_EQ(backoffs[0], absl::Seconds(2));
  EXPECT_EQ(backoffs[1], absl::Seconds(4));
  EXPECT_EQ(backoffs[7], absl::Seconds(256));
  EXPECT_EQ(backoffs[8], kMaxRetryBackoff);
  EXPECT_EQ(backoffs.back(), kMaxRetryBackoff);
  EXPECT_EQ(failure.retry_at, kNow + kMaxRetryBackoff);

  // New files start over.
  VersionFiles rewritten = kOldFiles;
  rewritten[1].size = 21;
  EXPECT_EQ(RecordLoadFailure(io, rewritten, kNow, &failure).backoff,
            kFirstRetryBackoff);
}

TEST(RecordLoadFailureTest, APermanentFailureHasNoRetryTime) {
  const LoadFailure failure = RecordLoadFailure(
      absl::FailedPreconditionError("bad weights"), kOldFiles, kNow, nullptr);
  EXPECT_FALSE(failure.transient);
  EXPECT_EQ(failure.retry_at, absl::InfiniteFuture());
  EXPECT_EQ(failure.files, kOldFiles);
}

TEST(FailedVersionsToSkipTest, RetriesAfterTheBackoffOrAChange) {
  const absl::Status io = absl::UnavailableError("io");
  const absl::Status corrupt = absl::DataLossError("corrupt");
  VersionFiles changed = kOldFiles;
  changed[0].mtime += absl::Seconds(1);
  const std::map<int64_t, LoadFailure> failures = {
      {1, RecordLoadFailure(io, kOldFiles, kNow, nullptr)},
      {2, RecordLoadFailure(corrupt, kOldFiles, kNow, nullptr)},
      {3, RecordLoadFailure(corrupt, kOldFiles, kNow, nullptr)},
      {4, RecordLoadFailure(corrupt, kOldFiles, kNow, nullptr)},
  };
  // Version 4 could not be listed: unchanged.
  const std::map<int64_t, VersionFiles> current = {
      {1, kOldFiles}, {2, kOldFiles}, {3, changed}};
  EXPECT_EQ(FailedVersionsToSkip(failures, current, kNow),
            (std::set<int64_t>{1, 2, 4}));
  EXPECT_EQ(FailedVersionsToSkip(failures, current, kNow + absl::Hours(100)),
            (std::set<int64_t>{2, 4}));
  EXPECT_TRUE(FailedVersionsToSkip({}, current, kNow).empty());
}

}  // namespace
}  // namespace unet
