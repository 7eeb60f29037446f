#include "client/connection.h"

#include <grpcpp/support/client_interceptor.h>

#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_contents.h"

ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle to trust: connect over TLS (empty: plaintext)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for servers that require one (mutual "
          "TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token sent with every call");
ABSL_FLAG(std::string, token, "",
          "bearer token sent with every call (visible to `ps`: prefer "
          "--token_file)");

namespace unet {
namespace {

// Adds the authorization header to every call of the channel.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* header)
      : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;  // owned by the factory, which the channel keeps
};

class BearerTokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags() {
  ConnectionOptions options;
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (!cert.empty() && ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert needs --tls_ca (the CA that signed the server's "
        "certificate)");
  }
  if (!ca.empty()) {
    absl::StatusOr<std::string> read = ReadFileContents(ca, "--tls_ca");
    if (!read.ok()) return read.status();
    options.tls_ca = *std::move(read);
  }
  if (!cert.empty()) {
    absl::StatusOr<std::string> read_cert =
        ReadFileContents(cert, "--tls_cert");
    if (!read_cert.ok()) return read_cert.status();
    absl::StatusOr<std::string> read_key = ReadFileContents(key, "--tls_key");
    if (!read_key.ok()) return read_key.status();
    options.tls_cert = *std::move(read_cert);
    options.tls_key = *std::move(read_key);
  }
  options.token = absl::GetFlag(FLAGS_token);
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    if (!options.token.empty()) {
      return absl::InvalidArgumentError(
          "give --token or --token_file, not both");
    }
    absl::StatusOr<std::string> read = ReadFileContents(file, "--token_file");
    if (!read.ok()) return read.status();
    options.token = std::string(absl::StripAsciiWhitespace(*read));
  }
  return options;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(
    const std::string& address, const ConnectionOptions& options,
    const grpc::ChannelArguments& arguments) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!options.tls_ca.empty()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = options.tls_ca;
    tls.pem_cert_chain = options.tls_cert;
    tls.pem_private_key = options.tls_key;
    credentials = grpc::SslCredentials(tls);
  }
  if (options.token.empty()) {
    return grpc::CreateCustomChannel(address, credentials, arguments);
  }
  // A token is a header value: no line breaks or other control bytes.
  for (char c : options.token) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "the bearer token holds spaces or control characters");
    }
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<BearerTokenInterceptorFactory>(options.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, arguments, std::move(interceptors));
}

}  // namespace unet
