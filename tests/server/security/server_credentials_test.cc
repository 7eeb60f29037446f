#include "server/security/server_credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/server/security/test_certificates.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::KeyPair;

class ServerCredentialsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Per process: CTest runs each test of this file in a process of its
    // own, in parallel, and they must not rewrite each other's files.
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        ("credentials_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    ca_ = new KeyPair(testing::MakeCertificateAuthority(*dir_, "ca"));
    server_ = new KeyPair(testing::MakeLeafCertificate(*dir_, "server", *ca_));
    other_ = new KeyPair(testing::MakeLeafCertificate(*dir_, "other", *ca_));
  }
  static fs::path* dir_;
  static KeyPair *ca_, *server_, *other_;
};
fs::path* ServerCredentialsTest::dir_ = nullptr;
KeyPair* ServerCredentialsTest::ca_ = nullptr;
KeyPair* ServerCredentialsTest::server_ = nullptr;
KeyPair* ServerCredentialsTest::other_ = nullptr;

TEST_F(ServerCredentialsTest, NoCertificateIsPlaintext) {
  EXPECT_TRUE(MakeServerCredentials({}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      MakeServerCredentials({"", server_->key.string(), ""}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      MakeServerCredentials({"", "", ca_->cert.string()}).status()));
}

TEST_F(ServerCredentialsTest, AcceptsAMatchingPairAndCa) {
  EXPECT_TRUE(
      MakeServerCredentials({server_->cert.string(), server_->key.string(), ""})
          .ok());
  EXPECT_TRUE(MakeServerCredentials({server_->cert.string(),
                                     server_->key.string(), ca_->cert.string()})
                  .ok());
}

TEST_F(ServerCredentialsTest, RefusesWhatWouldFailEveryHandshake) {
  const absl::Status no_key =
      MakeServerCredentials({server_->cert.string(), "", ""}).status();
  EXPECT_THAT(no_key.message(), HasSubstr("--tls_key"));
  const absl::Status missing =
      MakeServerCredentials(
          {(*dir_ / "nothing.crt").string(), server_->key.string(), ""})
          .status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  const absl::Status mismatch =
      MakeServerCredentials({server_->cert.string(), other_->key.string(), ""})
          .status();
  EXPECT_THAT(mismatch.message(), HasSubstr("is not the private key"));
  const fs::path garbage = *dir_ / "garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  EXPECT_THAT(
      MakeServerCredentials({garbage.string(), server_->key.string(), ""})
          .status()
          .message(),
      HasSubstr("holds no PEM certificate"));
  EXPECT_THAT(
      MakeServerCredentials({server_->cert.string(), garbage.string(), ""})
          .status()
          .message(),
      HasSubstr("no unencrypted PEM private key"));
  EXPECT_THAT(MakeServerCredentials({server_->cert.string(),
                                     server_->key.string(), garbage.string()})
                  .status()
                  .message(),
              HasSubstr("holds no PEM certificate"));
}

}  // namespace
}  // namespace unet
