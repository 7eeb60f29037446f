#ifndef SERVER_LIFECYCLE_MODEL_MANAGER_H_
#define SERVER_LIFECYCLE_MODEL_MANAGER_H_

// Owns the loaded model versions and keeps them in line with the model root
// (TF Serving's manager): Reconcile() loads, checks and warms up the versions
// the policy aspires to, swaps them in atomically, and drops the ones they
// replace. Requests hold a shared_ptr to the version they were admitted
// with, so a replaced version finishes its requests and is released (device
// memory included) after the last one. A version that fails for a reason
// that can pass (I/O error, out of memory, files still being written) is
// retried with backoff or when its files change; one broken for good (bad
// weights, bad model.json) only when its files change (version_policy.h).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/model_config.h"
#include "model/model_repository.h"
#include "segmentation/v1/segmentation.pb.h"
#include "server/engine/inference_engine.h"
#include "server/lifecycle/version_policy.h"
#include "server/observability/metrics.h"

namespace unet {

struct LoadedModel {
  std::string name;
  int64_t version = 0;
  ModelConfig config;
  // One engine per execution slot; SegmentExecutor's worker i uses engines[i].
  std::vector<std::shared_ptr<InferenceEngine>> engines;
  ModelMetrics* metrics = nullptr;  // owned by ServerMetrics

  // Returns the devices the engines run on, e.g. "cuda:0,cuda:1".
  std::string devices() const;
};

using segmentation::v1::VersionStatus;

class ModelManager {
 public:
  // `default_model` names the model that requests with an empty name get;
  // empty: the root must hold exactly one model. Each version gets `slots`
  // engines from `loader`. Models in `pins` serve their pinned versions, the
  // others their newest loadable one. `clock` times retries and tells fresh
  // files (tests pass a fake one).
  ModelManager(std::filesystem::path model_root, std::string default_model,
               EngineLoader loader, int slots, ServerMetrics& metrics,
               VersionPins pins = {},
               std::function<absl::Time()> clock = absl::Now);

  // The first Reconcile. Fails when the root cannot be read or the default
  // model has no loadable version.
  absl::Status LoadAll();

  // Loads what the policy now aspires to and unloads what it replaced.
  // Versions that fail are logged, counted and marked FAILED; the last good
  // version keeps serving. A failed version is tried again here once its
  // files have changed or, for a transient failure, once its backoff has
  // passed. A root that cannot be read (a mount that blinked) and a model
  // whose versions all vanished change nothing.
  void Reconcile();

  // Returns the loaded version `version` (0: newest) of `name` (empty: the
  // default model); NOT_FOUND, or UNAVAILABLE before LoadAll has finished.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Find(
      const std::string& name, int64_t version) const;

  // Returns every version of `name` the manager has seen, oldest first.
  std::vector<VersionStatus> Versions(const std::string& name) const;
  // Returns the names of every model the manager has seen.
  std::vector<std::string> ModelNames() const;

  const std::string& default_model() const { return default_model_; }

 private:
  // Reads, loads, checks and warms up one version.
  absl::StatusOr<std::shared_ptr<LoadedModel>> Load(
      const ModelVersionPath& path);
  // Loads the policy's candidates for `name` (load before unload) and drops
  // the loaded versions they replace.
  void ReconcileModel(const std::string& name,
                      const std::map<int64_t, ModelVersionPath>& on_disk);
  // Records, counts and logs a failed load of `path`, whose files were
  // `files` when it began, and marks it FAILED.
  void LoadFailed(const ModelVersionPath& path, const absl::Status& status,
                  VersionFiles files);
  void SetStatus(const std::string& name, int64_t version,
                 VersionStatus::State state, const std::string& message);

  const std::filesystem::path model_root_;
  std::string default_model_;
  const EngineLoader loader_;
  const int slots_;
  ServerMetrics& metrics_;
  const VersionPins pins_;
  const std::function<absl::Time()> clock_;

  std::mutex reconcile_mutex_;  // one Reconcile at a time
  // name -> version -> why its last load failed; only Reconcile, under
  // reconcile_mutex_, touches it. A version that loads is dropped from it.
  std::map<std::string, std::map<int64_t, LoadFailure>> failures_;
  mutable std::mutex mutex_;  // guards what follows
  bool loaded_ = false;       // LoadAll has finished
  // name -> version -> model, for the versions in service.
  std::map<std::string, std::map<int64_t, std::shared_ptr<const LoadedModel>>>
      models_;
  std::map<std::string, std::map<int64_t, VersionStatus>> statuses_;
};

}  // namespace unet

#endif  // SERVER_LIFECYCLE_MODEL_MANAGER_H_
