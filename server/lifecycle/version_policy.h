#ifndef SERVER_LIFECYCLE_VERSION_POLICY_H_
#define SERVER_LIFECYCLE_VERSION_POLICY_H_

// Which versions of a model should be in service, as a pure function of what
// is on disk, what failed, and the operator's pins (TF Serving's aspired
// versions). Mechanism (loading, swapping) lives in ModelManager.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace unet {

// Pinned versions per model name; a model without pins serves its newest.
using VersionPins = std::map<std::string, std::set<int64_t>>;

// Parses "unet:3,5;other:1" (model:versions, ';' between models).
absl::StatusOr<VersionPins> ParseVersionPins(const std::string& text);

// Returns the versions of `model` to try to serve, in the order to try them:
// with pins, the pinned versions on disk (all of them are served); without,
// every version on disk newest first, of which the first that loads is
// served. Versions in `failed` are left out: they are not retried.
std::vector<int64_t> CandidateVersions(const std::string& model,
                                       const std::vector<int64_t>& on_disk,
                                       const std::set<int64_t>& failed,
                                       const VersionPins& pins);

}  // namespace unet

#endif  // SERVER_LIFECYCLE_VERSION_POLICY_H_
