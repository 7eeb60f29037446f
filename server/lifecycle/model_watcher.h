#ifndef SERVER_LIFECYCLE_MODEL_WATCHER_H_
#define SERVER_LIFECYCLE_MODEL_WATCHER_H_

// Watches the model root and asks the manager to reconcile when something
// changes: inotify on the root and its model directories, and a poll every
// `poll_interval` as a fallback (network file systems send no inotify
// events). A negative interval and no inotify turn the thread off, so that
// tests can call Reconcile by hand.

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/time/time.h"

namespace unet {

class ModelWatcher {
 public:
  // Starts watching `root`; calls `reconcile` from its own thread.
  ModelWatcher(std::filesystem::path root, absl::Duration poll_interval,
               std::function<void()> reconcile);
  // Stops the thread.
  ~ModelWatcher();

  ModelWatcher(const ModelWatcher&) = delete;
  ModelWatcher& operator=(const ModelWatcher&) = delete;

 private:
  void Run();
  // (Re)adds inotify watches on the root and each model directory.
  void WatchDirectories();

  const std::filesystem::path root_;
  const absl::Duration poll_interval_;
  const std::function<void()> reconcile_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that stops the thread
  std::thread thread_;
};

}  // namespace unet

#endif  // SERVER_LIFECYCLE_MODEL_WATCHER_H_
