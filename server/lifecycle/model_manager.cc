#include "server/lifecycle/model_manager.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace unet {
namespace {

// Returns the regular files in `dir`, or nullopt when it cannot be listed.
std::optional<VersionFiles> ReadVersionFiles(const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  if (error) return std::nullopt;
  VersionFiles files;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    // stat(), as C++17 cannot convert std::filesystem's file times into
    // absl::Time; it follows links, so a linked model.pt counts.
    struct stat info;
    if (::stat(it->path().c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
      continue;
    }
    files.push_back({it->path().filename().string(),
                     static_cast<int64_t>(info.st_size),
                     absl::TimeFromTimespec(info.st_mtim)});
  }
  if (error) return std::nullopt;
  std::sort(
      files.begin(), files.end(),
      [](const FileStamp& a, const FileStamp& b) { return a.name < b.name; });
  return files;
}

}  // namespace

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

ModelManager::ModelManager(std::filesystem::path model_root,
                           std::string default_model, EngineLoader loader,
                           int slots, ServerMetrics& metrics, VersionPins pins,
                           std::function<absl::Time()> clock)
    : model_root_(std::move(model_root)),
      default_model_(std::move(default_model)),
      loader_(std::move(loader)),
      slots_(slots),
      metrics_(metrics),
      pins_(std::move(pins)),
      clock_(std::move(clock)) {}

absl::Status ModelManager::LoadAll() {
  ASSIGN_OR_RETURN(const std::vector<ModelVersionPath> versions,
                   ScanModelRoot(model_root_));
  std::set<std::string> names;
  for (const auto& v : versions) names.insert(v.name);
  if (default_model_.empty() && names.size() == 1) {
    default_model_ = *names.begin();
  }
  if (default_model_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_root_.string(), " holds ", names.size(),
                     " models; name the default one"));
  }
  Reconcile();
  std::lock_guard<std::mutex> lock(mutex_);
  loaded_ = true;
  const auto serving = models_.find(default_model_);
  if (serving == models_.end() || serving->second.empty()) {
    return absl::NotFoundError(absl::StrCat("default model \"", default_model_,
                                            "\" has no loadable version under ",
                                            model_root_.string()));
  }
  return absl::OkStatus();
}

void ModelManager::Reconcile() {
  std::lock_guard<std::mutex> reconciling(reconcile_mutex_);
  const auto scanned = ScanModelRoot(model_root_);
  if (!scanned.ok()) {
    // Never unload a serving model because its mount blinked.
    LogEvent("model_root_unreadable", {{"root", model_root_.string()},
                                       {"reason", scanned.status().message()}});
    return;
  }
  std::map<std::string, std::map<int64_t, ModelVersionPath>> on_disk;
  for (const ModelVersionPath& path : *scanned) {
    on_disk[path.name][path.version] = path;
  }
  for (const auto& [name, versions] : on_disk) ReconcileModel(name, versions);
}

void ModelManager::ReconcileModel(
    const std::string& name,
    const std::map<int64_t, ModelVersionPath>& on_disk) {
  std::vector<int64_t> disk_versions;
  std::set<int64_t> serving;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [version, model] : models_[name]) serving.insert(version);
  }
  for (const auto& [version, path] : on_disk) disk_versions.push_back(version);
  // A version that left the disk and comes back is a new one.
  std::map<int64_t, LoadFailure>& failures = failures_[name];
  for (auto it = failures.begin(); it != failures.end();) {
    it = on_disk.count(it->first) ? std::next(it) : failures.erase(it);
  }
  std::map<int64_t, VersionFiles> current;
  for (const auto& [version, failure] : failures) {
    std::optional<VersionFiles> files =
        ReadVersionFiles(on_disk.at(version).dir);
    if (files.has_value()) current[version] = *std::move(files);
  }
  const bool pinned = pins_.count(name) > 0;
  const std::vector<int64_t> candidates = CandidateVersions(
      name, disk_versions, FailedVersionsToSkip(failures, current, clock_()),
      pins_);

  // Load before unload: the versions to keep are decided only once loaded.
  std::set<int64_t> keep;
  for (int64_t version : candidates) {
    if (serving.count(version) == 0) {
      SetStatus(name, version, VersionStatus::LOADING, "");
      const ModelVersionPath& path = on_disk.at(version);
      // Read before the load, so that a write during it counts as a change.
      VersionFiles files = ReadVersionFiles(path.dir).value_or(VersionFiles());
      auto model = Load(path);
      if (!model.ok()) {
        LoadFailed(path, model.status(), std::move(files));
        continue;
      }
      failures.erase(version);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        models_[name][version] = *std::move(model);
      }
      SetStatus(name, version, VersionStatus::AVAILABLE, "");
    }
    keep.insert(version);
    if (!pinned) break;  // the newest that loads is the one to serve
  }
  if (keep.empty()) return;  // nothing loadable: the last good one stays

  std::vector<std::shared_ptr<const LoadedModel>> released;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& loaded = models_[name];
    for (auto it = loaded.begin(); it != loaded.end();) {
      if (keep.count(it->first)) {
        ++it;
        continue;
      }
      released.push_back(std::move(it->second));
      it = loaded.erase(it);
    }
  }
  for (const auto& model : released) {
    metrics_.RecordModelUnloaded(name, model->version, model->config.format(),
                                 model->devices());
    SetStatus(name, model->version, VersionStatus::UNLOADED,
              absl::StrCat("replaced by version ", *keep.rbegin()));
    LogEvent("model_unloaded",
             {{"model", name},
              {"version", absl::StrCat(model->version)},
              {"in_flight_holders", absl::StrCat(model.use_count() - 1)}});
  }
  // `released` goes out of scope here; versions still held by requests are
  // freed when their last request finishes.
}

absl::StatusOr<std::shared_ptr<LoadedModel>> ModelManager::Load(
    const ModelVersionPath& path) {
  const absl::Time start = absl::Now();
  auto loaded = [&]() -> absl::StatusOr<std::shared_ptr<LoadedModel>> {
    auto model = std::make_shared<LoadedModel>();
    model->name = path.name;
    model->version = path.version;
    model->metrics = &metrics_.ForModel(path.name);
    auto config = ReadModelConfig(path.dir / kConfigFile);
    // ReadModelConfig answers NOT_FOUND when it cannot open the file (an I/O
    // error, a rewrite under way), which can pass, and INVALID_ARGUMENT when
    // the file does not parse or validate, which cannot.
    if (absl::IsNotFound(config.status())) {
      return absl::UnavailableError(config.status().message());
    }
    if (!config.ok()) return config.status();
    model->config = *std::move(config);
    for (int slot = 0; slot < slots_; ++slot) {
      ASSIGN_OR_RETURN(std::unique_ptr<InferenceEngine> engine,
                       loader_(path.dir, model->config, slot));
      model->engines.push_back(std::move(engine));
    }
    return model;
  }();
  if (!loaded.ok()) return loaded.status();  // LoadFailed reports it
  const std::string version = absl::StrCat(path.version);
  const absl::Duration load_time = absl::Now() - start;
  metrics_.RecordModelLoaded(path.name, path.version,
                             (*loaded)->config.format(), (*loaded)->devices(),
                             load_time);
  LogEvent("model_loaded",
           {{"model", path.name},
            {"version", version},
            {"device", (*loaded)->devices()},
            {"load_ms", absl::StrCat(absl::ToInt64Milliseconds(load_time))}});
  return loaded;
}

void ModelManager::LoadFailed(const ModelVersionPath& path,
                              const absl::Status& status, VersionFiles files) {
  std::map<int64_t, LoadFailure>& failures = failures_[path.name];
  const auto previous = failures.find(path.version);
  LoadFailure failure = RecordLoadFailure(
      status, std::move(files), clock_(),
      previous == failures.end() ? nullptr : &previous->second);
  metrics_.RecordModelLoadFailed(path.name);
  LogEvent("model_load_failed",
           {{"model", path.name},
            {"version", absl::StrCat(path.version)},
            {"reason", status.ToString()},
            {"transient", failure.transient ? "true" : "false"}});
  const std::string message = absl::StrCat(
      status.message(),
      failure.transient ? absl::StrCat("; transient, retrying in ",
                                       absl::FormatDuration(failure.backoff))
                        : "; permanent, retried when its files change");
  failures[path.version] = std::move(failure);
  SetStatus(path.name, path.version, VersionStatus::FAILED, message);
}

void ModelManager::SetStatus(const std::string& name, int64_t version,
                             VersionStatus::State state,
                             const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  VersionStatus& status = statuses_[name][version];
  status.set_version(version);
  status.set_state(state);
  status.set_message(message);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelManager::Find(
    const std::string& name, int64_t version) const {
  const std::string& wanted = name.empty() ? default_model_ : name;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto model = models_.find(wanted);
  if ((model == models_.end() || model->second.empty()) && !loaded_) {
    return absl::UnavailableError("the server is still loading its models");
  }
  if (model == models_.end() || model->second.empty()) {
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

std::vector<VersionStatus> ModelManager::Versions(
    const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<VersionStatus> versions;
  const auto model = statuses_.find(name);
  if (model == statuses_.end()) return versions;
  for (const auto& [version, status] : model->second) {
    versions.push_back(status);
  }
  return versions;
}

std::vector<std::string> ModelManager::ModelNames() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, versions] : statuses_) names.push_back(name);
  return names;
}

}  // namespace unet
