#ifndef SERVER_SECURITY_SERVER_CREDENTIALS_H_
#define SERVER_SECURITY_SERVER_CREDENTIALS_H_

// What the gRPC port speaks: plaintext, TLS, or mutual TLS. The certificate
// files are read again while serving (gRPC's file-watcher provider), so a
// rotated certificate is served without a restart.

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace unet {

struct TlsFiles {
  std::string cert;  // PEM certificate chain; empty: plaintext
  std::string key;   // PEM private key of the chain's first certificate
  // PEM CA bundle; non-empty: clients must present a certificate it signed.
  std::string client_ca;
  // How often the files are read again. A replacement must be atomic (a
  // renamed file or a swapped directory link, as Kubernetes does for
  // Secrets): a key read with the old certificate is not served.
  absl::Duration reload_interval = absl::Seconds(10);
};

// Checks the files (readable, PEM, the key matches the certificate, the CA
// bundle parses) and returns credentials that serve them. Plaintext
// credentials when `files.cert` is empty; a key or CA without a certificate
// is an error.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

}  // namespace unet

#endif  // SERVER_SECURITY_SERVER_CREDENTIALS_H_
