// End to end: the server binary with TLS, mutual TLS, certificate rotation
// and bearer tokens, against clients made with gRPC's own credentials.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "tests/server/security/test_certificates.h"
#include "tests/server/server_process.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using segmentation::v1::ListModelsRequest;
using segmentation::v1::ListModelsResponse;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;
using testing::KeyPair;
using testing::ServerProcess;

constexpr char kToken[] = "test-token-0123456789abcdef";

std::string ReadAll(const fs::path& path) { return testing::ReadFile(path); }

// Credentials that trust `ca` and, when given, present `client`.
std::shared_ptr<grpc::ChannelCredentials> TlsClient(
    const KeyPair& ca, const KeyPair* client = nullptr) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadAll(ca.cert);
  if (client != nullptr) {
    options.pem_cert_chain = ReadAll(client->cert);
    options.pem_private_key = ReadAll(client->key);
  }
  return grpc::SslCredentials(options);
}

// Runs ListModels on a new channel; `token` non-empty: sent as a bearer.
grpc::Status ListModels(const std::string& address,
                        std::shared_ptr<grpc::ChannelCredentials> credentials,
                        const std::string& token = "") {
  grpc::ChannelArguments arguments;
  // A fresh connection each time: a rotated certificate is seen by new
  // handshakes, not by connections made before.
  arguments.SetInt("grpc.use_local_subchannel_pool", 1);
  auto stub = Segmentation::NewStub(
      grpc::CreateCustomChannel(address, credentials, arguments));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  ListModelsRequest request;
  ListModelsResponse response;
  return stub->ListModels(&context, request, &response);
}

class TransportSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) / "transport_security");
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    ca_ = new KeyPair(testing::MakeCertificateAuthority(*dir_, "ca"));
    other_ca_ = new KeyPair(testing::MakeCertificateAuthority(*dir_, "other"));
    server_ = new KeyPair(testing::MakeLeafCertificate(*dir_, "server", *ca_));
    client_ = new KeyPair(testing::MakeLeafCertificate(*dir_, "client", *ca_));
    stranger_ = new KeyPair(
        testing::MakeLeafCertificate(*dir_, "stranger", *other_ca_));
  }

  // The shipped model with a fixed plan (no planning), plus `flags`.
  static std::vector<std::string> Flags(std::vector<std::string> flags) {
    flags.insert(
        flags.end(),
        {absl::StrCat("--model_root=", UNET_SOURCE_DIR, "/model/repository"),
         "--device=cpu", "--instances=1", "--cpu_threads=1",
         "--max_batch_size=1", "--tls_reload_interval_s=1"});
    return flags;
  }

  static fs::path* dir_;
  static KeyPair *ca_, *other_ca_, *server_, *client_, *stranger_;
};
fs::path* TransportSecurityTest::dir_ = nullptr;
KeyPair* TransportSecurityTest::ca_ = nullptr;
KeyPair* TransportSecurityTest::other_ca_ = nullptr;
KeyPair* TransportSecurityTest::server_ = nullptr;
KeyPair* TransportSecurityTest::client_ = nullptr;
KeyPair* TransportSecurityTest::stranger_ = nullptr;

TEST_F(TransportSecurityTest, TlsSegmentsAndRefusesPlaintext) {
  auto server =
      ServerProcess::Start(Flags({"--tls_cert=" + server_->cert.string(),
                                  "--tls_key=" + server_->key.string()}),
                           "tls_server.log", TlsClient(*ca_));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& address = (*server)->address();

  auto stub = Segmentation::NewStub((*server)->channel());
  SegmentRequest request;
  request.mutable_image()->set_encoded(
      testing::ReadFile(fs::path(UNET_TEST_DATA_DIR) / "isbi_unlabeled_0.png"));
  SegmentResponse response;
  grpc::ClientContext context;
  const grpc::Status segmented = stub->Segment(&context, request, &response);
  ASSERT_TRUE(segmented.ok()) << segmented.error_message();
  EXPECT_EQ(response.mask().width(), 512);

  EXPECT_EQ(
      ListModels(address, grpc::InsecureChannelCredentials()).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  // A client that does not trust the server's CA stops at the handshake.
  EXPECT_EQ(ListModels(address, TlsClient(*other_ca_)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
}

TEST_F(TransportSecurityTest, MutualTlsRefusesClientsWithoutTheCasCertificate) {
  auto server =
      ServerProcess::Start(Flags({"--tls_cert=" + server_->cert.string(),
                                  "--tls_key=" + server_->key.string(),
                                  "--tls_client_ca=" + ca_->cert.string()}),
                           "mtls_server.log", TlsClient(*ca_, client_));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& address = (*server)->address();
  EXPECT_TRUE(ListModels(address, TlsClient(*ca_, client_)).ok());
  EXPECT_EQ(ListModels(address, TlsClient(*ca_)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListModels(address, TlsClient(*ca_, stranger_)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      ListModels(address, grpc::InsecureChannelCredentials()).error_code(),
      grpc::StatusCode::UNAVAILABLE);

  // Every failed handshake is a line of gRPC's: a flood of them must not
  // fill the log (common/log.h: 20 library lines per 10 s).
  for (int i = 0; i < 60; ++i) ListModels(address, TlsClient(*ca_, stranger_));
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
  const std::string log = (*server)->log();
  int library_lines = 0;
  for (size_t at = 0;
       (at = log.find("event=library_output ", at)) != std::string::npos;
       ++at) {
    ++library_lines;
  }
  EXPECT_LE(library_lines, 20) << log;
}

TEST_F(TransportSecurityTest, ServesARotatedCertificateWithoutARestart) {
  // The server's files live in a directory reached through a link, swapped
  // in one rename (docs/deployment.md).
  const fs::path first = *dir_ / "rotation_1", second = *dir_ / "rotation_2";
  const fs::path current = *dir_ / "rotation_current";
  for (const fs::path& dir : {first, second}) fs::create_directories(dir);
  const KeyPair old_pair = testing::MakeLeafCertificate(first, "tls", *ca_);
  const KeyPair new_pair =
      testing::MakeLeafCertificate(second, "tls", *other_ca_);
  testing::SwapDirectoryLink(current, first);
  auto server = ServerProcess::Start(
      Flags({"--tls_cert=" + (current / "tls.crt").string(),
             "--tls_key=" + (current / "tls.key").string()}),
      "rotation_server.log", TlsClient(*ca_));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& address = (*server)->address();
  ASSERT_TRUE(ListModels(address, TlsClient(*ca_)).ok());
  ASSERT_FALSE(ListModels(address, TlsClient(*other_ca_)).ok());

  testing::SwapDirectoryLink(current, second);
  // Read again within --tls_reload_interval_s=1; allow a loaded machine 20.
  bool rotated = false;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!rotated && std::chrono::steady_clock::now() < give_up) {
    rotated = ListModels(address, TlsClient(*other_ca_)).ok();
    if (!rotated) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(rotated) << (*server)->log();
  EXPECT_FALSE(ListModels(address, TlsClient(*ca_)).ok());
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);  // the same process throughout
}

TEST_F(TransportSecurityTest, BearerTokensGuardTheServiceButNotHealth) {
  const fs::path tokens = *dir_ / "tokens.txt";
  std::ofstream(tokens) << "# test callers\n" << kToken << "\n";
  auto server =
      ServerProcess::Start(Flags({"--tls_cert=" + server_->cert.string(),
                                  "--tls_key=" + server_->key.string(),
                                  "--auth_tokens_file=" + tokens.string()}),
                           "token_server.log", TlsClient(*ca_));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& address = (*server)->address();
  EXPECT_EQ(ListModels(address, TlsClient(*ca_)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(address, TlsClient(*ca_), "wrong-token-0123456789abc")
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(ListModels(address, TlsClient(*ca_), kToken).ok());

  // Segment is guarded too, before its image is looked at.
  auto stub = Segmentation::NewStub((*server)->channel());
  SegmentRequest request;
  request.mutable_image()->set_encoded("not an image");
  SegmentResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->Segment(&context, request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Probes need no token (ServerProcess::Start waited on this already).
  auto health = grpc::health::v1::Health::NewStub((*server)->channel());
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse serving;
  EXPECT_TRUE(health->Check(&health_context, {}, &serving).ok());

  // A token added to the file is accepted without a restart.
  const std::string added = "added-token-0123456789abcdef";
  std::ofstream(tokens.string() + ".new") << added << "\n";
  fs::rename(tokens.string() + ".new", tokens);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE(ListModels(address, TlsClient(*ca_), added).ok());
  EXPECT_EQ(ListModels(address, TlsClient(*ca_), kToken).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
  const std::string log = (*server)->log();
  EXPECT_EQ(log.find(kToken), std::string::npos) << log;
  EXPECT_EQ(log.find(added), std::string::npos) << log;
  EXPECT_NE(log.find("UNAUTHENTICATED"), std::string::npos) << log;
}

// The `segment` CLI's flags (client/connection.h) against a server that
// wants a client certificate and a token.
TEST_F(TransportSecurityTest, TheCliSendsItsCertificateAndToken) {
  const fs::path tokens = *dir_ / "cli_tokens.txt";
  std::ofstream(tokens) << kToken << "\n";
  const fs::path token_file = *dir_ / "cli_token";
  std::ofstream(token_file) << kToken << "\n";
  auto server =
      ServerProcess::Start(Flags({"--tls_cert=" + server_->cert.string(),
                                  "--tls_key=" + server_->key.string(),
                                  "--tls_client_ca=" + ca_->cert.string(),
                                  "--auth_tokens_file=" + tokens.string()}),
                           "cli_tls_server.log", TlsClient(*ca_, client_));
  ASSERT_TRUE(server.ok()) << server.status();
  const fs::path out = *dir_ / "cli_out";
  const fs::path log = *dir_ / "cli.log";
  const auto run = [&](std::vector<std::string> flags) {
    std::vector<std::string> argv = {SEGMENT_BIN,
                                     "--server=" + (*server)->address(),
                                     "--output=" + out.string()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(std::string(UNET_TEST_DATA_DIR) + "/isbi_unlabeled_0.png");
    return testing::WaitForExit(testing::Spawn(argv, log));
  };
  const std::string ca = "--tls_ca=" + ca_->cert.string();
  const std::string cert = "--tls_cert=" + client_->cert.string();
  const std::string key = "--tls_key=" + client_->key.string();
  EXPECT_EQ(run({ca, cert, key, "--token_file=" + token_file.string()}), 0)
      << testing::ReadFile(log);
  EXPECT_TRUE(fs::exists(out / "isbi_unlabeled_0_mask.png"));

  EXPECT_EQ(run({ca, cert, key, "--overwrite"}), 1);
  EXPECT_NE(testing::ReadFile(log).find("UNAUTHENTICATED"), std::string::npos)
      << testing::ReadFile(log);
  EXPECT_EQ(run({ca, "--token_file=" + token_file.string(), "--overwrite"}), 1);
  EXPECT_EQ(run({cert, key}), 2);  // a certificate without a CA to trust
}

}  // namespace
}  // namespace unet
