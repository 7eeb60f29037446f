#include "server/security/bearer_tokens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "s3cret-token_0123456789";
constexpr char kOtherToken[] = "another-token-abcdefghij";

class BearerTokensTest : public ::testing::Test {
 protected:
  // Writes `contents` beside the tokens file and renames it over it.
  void WriteTokens(const std::string& contents) {
    const fs::path staged = path_.string() + ".new";
    std::ofstream(staged) << contents;
    fs::rename(staged, path_);
  }
  std::unique_ptr<BearerTokens> LoadOrDie() {
    auto tokens = BearerTokens::Load(path_.string(), absl::ZeroDuration());
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return tokens.ok() ? *std::move(tokens) : nullptr;
  }

  // Per process: CTest runs these tests in parallel processes.
  const fs::path path_ = fs::path(::testing::TempDir()) /
                         ("tokens_" + std::to_string(getpid()) + ".txt");
};

TEST_F(BearerTokensTest, AcceptsTheFilesTokensOnly) {
  WriteTokens(std::string("# callers\n\n  ") + kToken + "  \n" + kOtherToken +
              "\n");
  auto tokens = LoadOrDie();
  ASSERT_NE(tokens, nullptr);
  EXPECT_TRUE(tokens->Check(std::string("Bearer ") + kToken).ok());
  EXPECT_TRUE(tokens->Check(std::string("bearer ") + kOtherToken).ok());
  for (const std::string& refused :
       {std::string(""), std::string(kToken), std::string("Bearer "),
        std::string("Bearer ") + kToken + "x", std::string("Basic ") + kToken,
        std::string("Bearer ") + std::string(kToken).substr(1),
        std::string("Bearer # callers")}) {
    const absl::Status status = tokens->Check(refused);
    EXPECT_TRUE(absl::IsUnauthenticated(status)) << refused << ": " << status;
    EXPECT_THAT(status.message(), Not(HasSubstr(kToken)));
  }
}

TEST_F(BearerTokensTest, RefusesFilesThatCannotServe) {
  EXPECT_TRUE(absl::IsNotFound(
      BearerTokens::Load((path_.string() + ".missing")).status()));
  WriteTokens("# nobody\n");
  EXPECT_THAT(BearerTokens::Load(path_.string()).status().message(),
              HasSubstr("holds no token"));
  WriteTokens(std::string(kToken) + "\nshort-secret\n");
  const absl::Status too_short = BearerTokens::Load(path_.string()).status();
  EXPECT_THAT(too_short.message(), HasSubstr("line 2"));
  EXPECT_THAT(too_short.message(), Not(HasSubstr("short-secret")));
  WriteTokens("token with spaces in the middle\n");
  EXPECT_TRUE(
      absl::IsInvalidArgument(BearerTokens::Load(path_.string()).status()));
}

TEST_F(BearerTokensTest, ReadsTheFileAgainWhenItChanges) {
  WriteTokens(std::string(kToken) + "\n");
  auto tokens = LoadOrDie();
  ASSERT_NE(tokens, nullptr);
  WriteTokens(std::string(kOtherToken) + "\n");  // kToken revoked
  EXPECT_TRUE(tokens->Check(std::string("Bearer ") + kOtherToken).ok());
  EXPECT_FALSE(tokens->Check(std::string("Bearer ") + kToken).ok());
}

TEST_F(BearerTokensTest, FailsClosedWhileTheFileIsBroken) {
  WriteTokens(std::string(kToken) + "\n");
  auto tokens = LoadOrDie();
  ASSERT_NE(tokens, nullptr);
  fs::remove(path_);
  EXPECT_TRUE(
      absl::IsUnauthenticated(tokens->Check(std::string("Bearer ") + kToken)));
  WriteTokens("short\n");
  EXPECT_FALSE(tokens->Check(std::string("Bearer ") + kToken).ok());
  WriteTokens(std::string(kToken) + "\n");
  EXPECT_TRUE(tokens->Check(std::string("Bearer ") + kToken).ok());
}

TEST_F(BearerTokensTest, LooksAtTheFileAtMostOncePerRecheck) {
  WriteTokens(std::string(kToken) + "\n");
  auto tokens = BearerTokens::Load(path_.string(), absl::Hours(1));
  ASSERT_TRUE(tokens.ok());
  ASSERT_TRUE((*tokens)->Check(std::string("Bearer ") + kToken).ok());
  WriteTokens(std::string(kOtherToken) + "\n");
  // Not looked at again within the hour: the old set still holds.
  EXPECT_TRUE((*tokens)->Check(std::string("Bearer ") + kToken).ok());
}

}  // namespace
}  // namespace unet
