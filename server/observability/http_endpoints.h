#ifndef SERVER_OBSERVABILITY_HTTP_ENDPOINTS_H_
#define SERVER_OBSERVABILITY_HTTP_ENDPOINTS_H_

// The HTTP side of the server, for Prometheus and for load balancers that do
// not speak gRPC:
//   /metrics  the Prometheus text exposition
//   /healthz  200 while the process runs
//   /readyz   200 while a model is loaded and the server is not draining,
//             503 otherwise
// prometheus-cpp's Exposer serves only metrics URIs, so this serves the
// registry itself on one civetweb server (what the Exposer does inside).

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/observability/metrics.h"

class CivetServer;

namespace unet {

class HttpEndpoints {
 public:
  // Starts listening on address:port (port 0: any free port). `metrics` and
  // `ready` must outlive the returned object.
  static absl::StatusOr<std::unique_ptr<HttpEndpoints>> Start(
      const std::string& address, int port, ServerMetrics& metrics,
      ScrapeSources sources, const std::atomic<bool>& ready);
  ~HttpEndpoints();

  int port() const { return port_; }

 private:
  class Handler;
  HttpEndpoints() = default;

  std::unique_ptr<Handler> metrics_handler_, healthz_handler_, readyz_handler_;
  std::unique_ptr<CivetServer> server_;
  int port_ = 0;
};

}  // namespace unet

#endif  // SERVER_OBSERVABILITY_HTTP_ENDPOINTS_H_
