#include "server/api/health_service.h"

#include <optional>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace unet {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// "ipv4:10.0.0.7:52344" -> "ipv4:10.0.0.7", "ipv6:[::1]:52344" ->
// "ipv6:[::1]"; other kinds of peer (unix sockets) stay whole.
std::string PeerHost(absl::string_view peer) {
  if (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:")) {
    const size_t port = peer.rfind(':');
    if (port > 4) peer = peer.substr(0, port);
  }
  return std::string(peer);
}

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "the server is shutting down");
}

grpc::Status NameTooLong() {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "service name too long");
}

}  // namespace

// One Watch stream: the status now, then each change, one write at a time
// (statuses set during a write are sent after it, only the latest, and only
// if it differs from what was sent). In gRPC 1.51 no reaction runs inside
// StartWrite or Finish (server_callback_handlers.h: writes never inline,
// OnDone always on the executor), so those are called under the mutex.
class HealthService::Watcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  explicit Watcher(HealthService* service) : service_(service) {}

  void Send(Status status) {
    absl::MutexLock lock(&mutex_);
    if (end_.has_value()) return;
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
    if (next_ == sent_) next_.reset();
    if (next_.has_value()) {
      sent_ = *next_;
      next_.reset();
      response_.set_status(*sent_);
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
  std::optional<Status> sent_ ABSL_GUARDED_BY(mutex_);    // last written
  std::optional<Status> next_ ABSL_GUARDED_BY(mutex_);    // to write next
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mutex_);
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
};

HealthService::HealthService(std::vector<std::string> services,
                             HealthWatchLimits limits)
    : services_(std::move(services)), limits_(limits) {}

bool HealthService::Known(const std::string& service) const {
  return service.empty() || absl::c_linear_search(services_, service);
}

HealthService::Status HealthService::StatusOf(bool known) const {
  if (!known) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? HealthCheckResponse::SERVING
                  : HealthCheckResponse::NOT_SERVING;
}

void HealthService::TellWatchers() {
  for (const auto& [watcher, watched] : watchers_) {
    watcher->Send(StatusOf(watched.known));
  }
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mutex_);
  if (shut_down_) return;
  serving_ = serving;
  TellWatchers();
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mutex_);
  shut_down_ = true;
  serving_ = false;
  TellWatchers();
  for (const auto& entry : watchers_) entry.first->End(ShuttingDown());
}

void HealthService::Forget(Watcher* watcher) {
  absl::MutexLock lock(&mutex_);
  const auto watched = watchers_.find(watcher);
  if (watched == watchers_.end()) return;  // refused at once
  const auto host = watchers_per_host_.find(watched->second.host);
  if (--host->second == 0) watchers_per_host_.erase(host);
  watchers_.erase(watched);
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->service().size() > kMaxHealthServiceNameBytes) {
    reactor->Finish(NameTooLong());
  } else if (!Known(request->service())) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
  } else {
    {
      absl::MutexLock lock(&mutex_);
      response->set_status(StatusOf(/*known=*/true));
    }
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this);
  if (request->service().size() > kMaxHealthServiceNameBytes) {
    watcher->End(NameTooLong());
    return watcher;
  }
  const std::string host = PeerHost(context->peer());
  absl::MutexLock lock(&mutex_);
  const auto counted = watchers_per_host_.find(host);
  const int from_host =
      counted == watchers_per_host_.end() ? 0 : counted->second;
  if (shut_down_) {
    watcher->End(ShuttingDown());
  } else if (watchers_.size() >= static_cast<size_t>(limits_.total) ||
             from_host >= limits_.per_host) {
    watcher->End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "too many health watchers"));
  } else {
    // An unknown service is watched too: SERVICE_UNKNOWN, as the standard
    // says, in case it appears later (here it never does).
    const bool known = Known(request->service());
    ++watchers_per_host_[host];
    watchers_.emplace(watcher, Watched{known, host});
    watcher->Send(StatusOf(known));
  }
  return watcher;
}

}  // namespace unet
