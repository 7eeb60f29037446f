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

}  // namespace
}  // namespace unet
