#include "server/api/health_service.h"

#include <optional>
#include <utility>

#include "absl/algorithm/container.h"

namespace unet {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: the status now, then each change, one write at a time
// (a status that changes during a write is sent after it, only the latest).
// gRPC calls reactions on its own threads, never inside StartWrite or
// Finish, so those are called under the mutex.
class HealthService::Watcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  explicit Watcher(HealthService* service) : service_(service) {}

  void Send(Status status) {
    absl::MutexLock lock(&mutex_);
    if (status == last_ || end_.has_value()) return;
    last_ = status;
    next_ = status;
    Pump();
  }

  // Finishes with `status` once the writes queued have been sent.
  void End(grpc::Status status) {
    absl::MutexLock lock(&mutex_);
    if (!end_.has_value()) end_ = std::move(status);
    Pump();
  }

 private:
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (writing_ || finished_) return;
    if (next_.has_value()) {
      response_.set_status(*next_);
      next_.reset();
      writing_ = true;
      StartWrite(&response_);
    } else if (end_.has_value()) {
      finished_ = true;
      Finish(*end_);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    writing_ = false;
    if (!ok) {  // the stream is broken: nothing more can be sent
      next_.reset();
      if (!end_.has_value()) end_ = grpc::Status::CANCELLED;
    }
    Pump();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->Forget(this);
    delete this;
  }

  HealthService* const service_;
  absl::Mutex mutex_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mutex_);  // being written
  std::optional<Status> last_ ABSL_GUARDED_BY(mutex_);    // last queued
  std::optional<Status> next_ ABSL_GUARDED_BY(mutex_);    // to write next
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mutex_);
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
};

HealthService::HealthService(std::vector<std::string> services,
                             int max_watchers)
    : services_(std::move(services)), max_watchers_(max_watchers) {}

bool HealthService::Known(const std::string& service) const {
  return service.empty() || absl::c_linear_search(services_, service);
}

HealthService::Status HealthService::StatusOf(bool known) const {
  if (!known) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? HealthCheckResponse::SERVING
                  : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mutex_);
  serving_ = serving;
  for (const auto& [watcher, known] : watchers_) {
    watcher->Send(StatusOf(known));
  }
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mutex_);
  shut_down_ = true;
  for (const auto& entry : watchers_) {
    entry.first->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "the server is shutting down"));
  }
}

void HealthService::Forget(Watcher* watcher) {
  absl::MutexLock lock(&mutex_);
  watchers_.erase(watcher);
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Known(request->service())) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
    return reactor;
  }
  {
    absl::MutexLock lock(&mutex_);
    response->set_status(StatusOf(/*known=*/true));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* /*context*/,
    const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this);
  absl::MutexLock lock(&mutex_);
  if (shut_down_) {
    watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "the server is shutting down"));
  } else if (watchers_.size() >= max_watchers_) {
    watcher->End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "too many health watchers"));
  } else {
    // An unknown service is watched too: SERVICE_UNKNOWN, as the standard
    // says, in case it appears later (here it never does).
    const bool known = Known(request->service());
    watchers_.emplace(watcher, known);
    watcher->Send(StatusOf(known));
  }
  return watcher;
}

}  // namespace unet
