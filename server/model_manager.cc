#include "server/model_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/model_repository.h"

namespace unet {

ModelManager::ModelManager(std::filesystem::path model_root,
                           std::string default_model, EngineLoader loader,
                           int slots, ServerMetrics& metrics)
    : model_root_(std::move(model_root)),
      default_model_(std::move(default_model)),
      loader_(std::move(loader)),
      slots_(slots),
      metrics_(metrics) {}

std::string LoadedModel::devices() const {
  std::vector<std::string> names;
  for (const auto& engine : engines) {
    if (std::find(names.begin(), names.end(), engine->device()) ==
        names.end()) {
      names.push_back(engine->device());
    }
  }
  return absl::StrJoin(names, ",");
}

absl::Status ModelManager::LoadAll() {
  ASSIGN_OR_RETURN(const std::vector<ModelVersionPath> versions,
                   ScanModelRoot(model_root_));
  // Newest first within each name: the first version that loads wins.
  std::map<std::string, std::vector<const ModelVersionPath*>> by_name;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    by_name[it->name].push_back(&*it);
  }
  if (default_model_.empty() && by_name.size() == 1) {
    default_model_ = by_name.begin()->first;
  }
  if (default_model_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_root_.string(), " holds ", by_name.size(),
                     " models; name the default one"));
  }
  for (const auto& [name, candidates] : by_name) {
    for (const ModelVersionPath* path : candidates) {
      const absl::Time start = absl::Now();
      auto loaded = [&]() -> absl::StatusOr<std::shared_ptr<LoadedModel>> {
        auto model = std::make_shared<LoadedModel>();
        model->name = path->name;
        model->version = path->version;
        model->metrics = &metrics_.ForModel(path->name);
        ASSIGN_OR_RETURN(model->config,
                         ReadModelConfig(path->dir / kConfigFile));
        for (int slot = 0; slot < slots_; ++slot) {
          ASSIGN_OR_RETURN(std::unique_ptr<InferenceEngine> engine,
                           loader_(path->dir, model->config, slot));
          model->engines.push_back(std::move(engine));
        }
        return model;
      }();
      if (!loaded.ok()) {
        metrics_.RecordModelLoadFailed(name);
        LogEvent("model_load_failed", {{"model", name},
                                       {"version", absl::StrCat(path->version)},
                                       {"reason", loaded.status().ToString()}});
        continue;
      }
      const absl::Duration load_time = absl::Now() - start;
      metrics_.RecordModelLoaded(name, path->version,
                                 (*loaded)->config.format(),
                                 (*loaded)->devices(), load_time);
      LogEvent(
          "model_loaded",
          {{"model", name},
           {"version", absl::StrCat(path->version)},
           {"device", (*loaded)->devices()},
           {"load_ms", absl::StrCat(absl::ToInt64Milliseconds(load_time))}});
      std::lock_guard<std::mutex> lock(mutex_);
      models_[name][path->version] = std::move(*loaded);
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  loaded_ = true;
  if (models_.count(default_model_) == 0) {
    return absl::NotFoundError(absl::StrCat("default model \"", default_model_,
                                            "\" has no loadable version under ",
                                            model_root_.string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelManager::Find(
    const std::string& name, int64_t version) const {
  const std::string& wanted = name.empty() ? default_model_ : name;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto model = models_.find(wanted);
  if (model == models_.end() && !loaded_) {
    return absl::UnavailableError("the server is still loading its models");
  }
  if (model == models_.end()) {
    return absl::NotFoundError(absl::StrCat("no model named \"", wanted, "\""));
  }
  if (version == 0) return model->second.rbegin()->second;
  const auto found = model->second.find(version);
  if (found == model->second.end()) {
    return absl::NotFoundError(
        absl::StrCat("model \"", wanted, "\" has no loaded version ", version));
  }
  return found->second;
}

}  // namespace unet
