#ifndef SERVER_MODEL_MANAGER_H_
#define SERVER_MODEL_MANAGER_H_

// Owns the loaded model versions. Requests hold a shared_ptr to the version
// they were admitted with, so a version stays alive until its last request
// finishes, whatever the manager does meanwhile.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "server/inference_engine.h"
#include "server/metrics.h"

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

class ModelManager {
 public:
  // `default_model` names the model that requests with an empty name get;
  // empty: the root must hold exactly one model. Each version gets `slots`
  // engines from `loader`.
  ModelManager(std::filesystem::path model_root, std::string default_model,
               EngineLoader loader, int slots, ServerMetrics& metrics);

  // Loads the newest version of every model under the root. Versions that
  // fail are skipped with a logged reason; fails when the default model has
  // no loadable version.
  absl::Status LoadAll();

  // Returns the loaded version `version` (0: newest) of `name` (empty: the
  // default model); NOT_FOUND, or UNAVAILABLE before LoadAll has finished.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Find(
      const std::string& name, int64_t version) const;

  const std::string& default_model() const { return default_model_; }

 private:
  const std::filesystem::path model_root_;
  std::string default_model_;
  const EngineLoader loader_;
  const int slots_;
  ServerMetrics& metrics_;
  mutable std::mutex mutex_;
  bool loaded_ = false;  // LoadAll has finished
  // name -> version -> model.
  std::map<std::string, std::map<int64_t, std::shared_ptr<const LoadedModel>>>
      models_;
};

}  // namespace unet

#endif  // SERVER_MODEL_MANAGER_H_
