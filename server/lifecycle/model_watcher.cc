#include "server/lifecycle/model_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdint>
#include <system_error>

#include "absl/time/clock.h"

namespace unet {
namespace {

// Events that can make a version appear, change or go: writers rename a
// finished version directory into place.
constexpr uint32_t kEvents = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
                             IN_DELETE | IN_CLOSE_WRITE | IN_DELETE_SELF;

}  // namespace

ModelWatcher::ModelWatcher(std::filesystem::path root,
                           absl::Duration poll_interval,
                           std::function<void()> reconcile)
    : root_(std::move(root)),
      poll_interval_(poll_interval),
      reconcile_(std::move(reconcile)) {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (inotify_fd_ < 0 && poll_interval_ < absl::ZeroDuration()) return;
  WatchDirectories();
  thread_ = std::thread([this] { Run(); });
}

ModelWatcher::~ModelWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ModelWatcher::WatchDirectories() {
  if (inotify_fd_ < 0) return;
  // Adding a watch twice returns the same descriptor, so this is idempotent.
  inotify_add_watch(inotify_fd_, root_.c_str(), kEvents);
  std::error_code error;
  for (std::filesystem::directory_iterator it(root_, error), end;
       !error && it != end; it.increment(error)) {
    if (it->is_directory(error)) {
      inotify_add_watch(inotify_fd_, it->path().c_str(), kEvents);
    }
  }
}

void ModelWatcher::Run() {
  const int timeout_ms =
      poll_interval_ < absl::ZeroDuration()
          ? -1
          : static_cast<int>(absl::ToInt64Milliseconds(poll_interval_));
  while (true) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (ready < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) return;
    if (fds[1].revents & POLLIN) {
      // Drain the events, and let a writer finish a burst of them.
      char buffer[4096];
      while (read(inotify_fd_, buffer, sizeof(buffer)) > 0) {
      }
      absl::SleepFor(absl::Milliseconds(50));
      while (read(inotify_fd_, buffer, sizeof(buffer)) > 0) {
      }
    }
    // An event or the poll interval: look at the root either way.
    WatchDirectories();
    reconcile_();
  }
}

}  // namespace unet
