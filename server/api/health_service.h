#ifndef SERVER_API_HEALTH_SERVICE_H_
#define SERVER_API_HEALTH_SERVICE_H_

// The standard grpc.health.v1.Health service (Check and Watch), for probes
// and clients' health checking. gRPC's built-in one starts SERVING, so a
// check that came between the port opening and the server's first
// SetServing(false) was told SERVING before any model had loaded; this one
// starts NOT_SERVING. It needs no bearer token.

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace unet {

// Watch streams open at once; more get RESOURCE_EXHAUSTED. A gRPC client
// with health checking opens one per server address it balances over.
inline constexpr int kMaxHealthWatchers = 1024;

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  // `services`: the service names known besides "" (the whole server). They
  // all share one status. Destroy the gRPC server first: its calls'
  // reactors point here.
  explicit HealthService(std::vector<std::string> services,
                         int max_watchers = kMaxHealthWatchers);

  // Sets the status of every known service and tells the watchers.
  void SetServing(bool serving);
  // Ends every Watch stream with UNAVAILABLE and refuses new ones: a stream
  // never ends by itself, and a draining gRPC server waits for its calls.
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
  // Called by a watcher when its call is done, before it deletes itself.
  void Forget(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mutex_);

  const std::vector<std::string> services_;
  const size_t max_watchers_;
  absl::Mutex mutex_;
  bool serving_ ABSL_GUARDED_BY(mutex_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mutex_) = false;
  // Each open stream, and whether it watches a known service (not the
  // name, which may be as long as a message).
  absl::flat_hash_map<Watcher*, bool> watchers_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace unet

#endif  // SERVER_API_HEALTH_SERVICE_H_
