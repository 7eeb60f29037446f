#ifndef CLIENT_CONNECTION_H_
#define CLIENT_CONNECTION_H_

// How the clients (the `segment` CLI, the benchmarks) reach a server:
// plaintext or TLS (optionally with a client certificate for mutual TLS),
// and a bearer token sent with every call. The flags are shared:
//   --tls_ca FILE     trust this CA bundle: speak TLS
//   --tls_cert FILE   --tls_key FILE: present this client certificate
//   --token_file FILE the bearer token (preferred: a flag shows in `ps`)
//   --token TOKEN     the bearer token

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace unet {

struct ConnectionOptions {
  std::string tls_ca;             // non-empty: TLS, trusting this PEM bundle
  std::string tls_cert, tls_key;  // client certificate for mutual TLS
  std::string token;              // sent as "authorization: Bearer <token>"
};

// The options the flags above give; fails when a file cannot be read or
// the flags do not fit together.
absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags();

// Returns a channel to `address` with `options`; every call on it carries
// the token. `arguments` are the caller's (message sizes, pools).
absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(
    const std::string& address, const ConnectionOptions& options,
    const grpc::ChannelArguments& arguments = {});

}  // namespace unet

#endif  // CLIENT_CONNECTION_H_
