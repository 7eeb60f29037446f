#ifndef SERVER_API_HEALTH_SERVICE_H_
#define SERVER_API_HEALTH_SERVICE_H_

// The standard grpc.health.v1.Health service (Check and Watch), for probes
// and clients' health checking. gRPC's built-in one starts SERVING, so a
// check that came between the port opening and the server's first
// SetServing(false) was told SERVING before any model had loaded; this one
// starts NOT_SERVING. It needs no bearer token, so what one caller can hold
// is bounded.

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace unet {

// Longest service name asked about: an open Watch keeps its request.
inline constexpr size_t kMaxHealthServiceNameBytes = 256;

// Watch streams open at once; more get RESOURCE_EXHAUSTED. A gRPC client
// with health checking opens one per channel and server address, so one
// host rarely needs many; the bound per host keeps one caller from taking
// every stream and making the server look unhealthy to the others.
struct HealthWatchLimits {
  int total = 10000;
  int per_host = 128;
};

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  // `services`: the service names known besides "" (the whole server). They
  // all share one status. Call Shutdown before the gRPC server's Shutdown
  // (Watch streams never end by themselves) and destroy the gRPC server
  // first (its calls' reactors point here).
  explicit HealthService(std::vector<std::string> services,
                         HealthWatchLimits limits = {});

  // Sets the status of every known service and tells the watchers; after
  // Shutdown, does nothing.
  void SetServing(bool serving);
  // Says NOT_SERVING, ends every Watch stream with UNAVAILABLE and refuses
  // new ones, so that they do not hold up a draining gRPC server.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  bool Known(const std::string& service) const;
  Status StatusOf(bool known) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Sends every watcher its service's status now.
  void TellWatchers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Called by a watcher when its call is done, before it deletes itself.
  void Forget(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mutex_);

  struct Watched {
    bool known;        // a known service, not the name
    std::string host;  // the peer's address without its port
  };

  const std::vector<std::string> services_;
  const HealthWatchLimits limits_;
  absl::Mutex mutex_;
  bool serving_ ABSL_GUARDED_BY(mutex_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mutex_) = false;
  absl::flat_hash_map<Watcher*, Watched> watchers_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, int> watchers_per_host_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace unet

#endif  // SERVER_API_HEALTH_SERVICE_H_
