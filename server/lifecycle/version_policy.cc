#include "server/lifecycle/version_policy.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace unet {

absl::StatusOr<VersionPins> ParseVersionPins(const std::string& text) {
  VersionPins pins;
  for (absl::string_view entry :
       absl::StrSplit(text, ';', absl::SkipWhitespace())) {
    const std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
    if (parts.size() != 2 || parts[0].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", entry, "\" is not model:version[,version...]"));
    }
    std::set<int64_t>& versions = pins[std::string(parts[0])];
    for (absl::string_view number : absl::StrSplit(parts[1], ',')) {
      int64_t version = 0;
      if (!absl::SimpleAtoi(number, &version) || version < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", number, "\" is not a version number"));
      }
      versions.insert(version);
    }
  }
  return pins;
}

std::vector<int64_t> CandidateVersions(const std::string& model,
                                       const std::vector<int64_t>& on_disk,
                                       const std::set<int64_t>& failed,
                                       const VersionPins& pins) {
  const auto pinned = pins.find(model);
  std::vector<int64_t> candidates;
  for (int64_t version : on_disk) {
    if (failed.count(version)) continue;
    if (pinned != pins.end() && !pinned->second.count(version)) continue;
    candidates.push_back(version);
  }
  std::sort(candidates.rbegin(), candidates.rend());
  return candidates;
}

bool operator==(const FileStamp& a, const FileStamp& b) {
  return a.name == b.name && a.size == b.size && a.mtime == b.mtime;
}

bool IsTransientLoadFailure(const absl::Status& status,
                            const VersionFiles& files, absl::Time now) {
  if (absl::IsUnavailable(status) || absl::IsResourceExhausted(status)) {
    return true;
  }
  // A file from the future (clock skew) counts as fresh too.
  return std::any_of(files.begin(), files.end(), [now](const FileStamp& file) {
    return now - file.mtime < kSettleWindow;
  });
}

LoadFailure RecordLoadFailure(const absl::Status& status, VersionFiles files,
                              absl::Time now, const LoadFailure* previous) {
  LoadFailure failure;
  failure.transient = IsTransientLoadFailure(status, files, now);
  failure.files = std::move(files);
  if (!failure.transient) return failure;
  // New files start a new story: they get the short wait again.
  const bool again = previous != nullptr && previous->transient &&
                     previous->files == failure.files;
  failure.backoff = again ? std::min(2 * previous->backoff, kMaxRetryBackoff)
                          : kFirstRetryBackoff;
  failure.retry_at = now + failure.backoff;
  return failure;
}

std::set<int64_t> FailedVersionsToSkip(
    const std::map<int64_t, LoadFailure>& failures,
    const std::map<int64_t, VersionFiles>& current, absl::Time now) {
  std::set<int64_t> skip;
  for (const auto& [version, failure] : failures) {
    const auto files = current.find(version);
    if (files != current.end() && files->second != failure.files) continue;
    if (failure.transient && now >= failure.retry_at) continue;
    skip.insert(version);
  }
  return skip;
}

}  // namespace unet
