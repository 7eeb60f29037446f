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

}  // namespace unet
