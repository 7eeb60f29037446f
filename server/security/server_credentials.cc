#include "server/security/server_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"

namespace unet {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Fails unless `pem` holds at least one certificate.
absl::Status CheckCertificates(const std::string& pem,
                               const std::string& path) {
  auto bio = MemoryBio(pem);
  std::unique_ptr<X509, X509Deleter> first(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (first == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds no PEM certificate"));
  }
  return absl::OkStatus();
}

// Fails unless `key_pem` is the private key of the first certificate of
// `cert_pem`: a mismatch would fail every handshake.
absl::Status CheckKeyMatches(const std::string& cert_pem,
                             const std::string& key_pem,
                             const TlsFiles& files) {
  auto cert_bio = MemoryBio(cert_pem);
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  auto key_bio = MemoryBio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(files.key, " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        files.key, " is not the private key of the certificate in ",
        files.cert));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files) {
  if (files.cert.empty()) {
    if (!files.key.empty() || !files.client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls_key and --tls_client_ca need --tls_cert");
    }
    return grpc::InsecureServerCredentials();
  }
  if (files.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert needs --tls_key");
  }
  const absl::StatusOr<std::string> cert =
      ReadFileContents(files.cert, "--tls_cert");
  if (!cert.ok()) return cert.status();
  const absl::StatusOr<std::string> key =
      ReadFileContents(files.key, "--tls_key");
  if (!key.ok()) return key.status();
  if (absl::Status checked = CheckCertificates(*cert, files.cert);
      !checked.ok()) {
    return checked;
  }
  if (absl::Status matches = CheckKeyMatches(*cert, *key, files);
      !matches.ok()) {
    return matches;
  }
  if (!files.client_ca.empty()) {
    const absl::StatusOr<std::string> ca =
        ReadFileContents(files.client_ca, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
    if (absl::Status checked = CheckCertificates(*ca, files.client_ca);
        !checked.ok()) {
      return checked;
    }
  }
  const auto interval = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(files.reload_interval)));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key, files.cert, files.client_ca, interval);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace unet
