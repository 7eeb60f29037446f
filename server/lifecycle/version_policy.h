#ifndef SERVER_LIFECYCLE_VERSION_POLICY_H_
#define SERVER_LIFECYCLE_VERSION_POLICY_H_

// Which versions of a model should be in service, as a pure function of what
// is on disk, what failed, and the operator's pins (TF Serving's aspired
// versions), and when a failed version is tried again. Mechanism (reading the
// disk, loading, swapping, the clock) lives in ModelManager.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace unet {

// Pinned versions per model name; a model without pins serves its newest.
using VersionPins = std::map<std::string, std::set<int64_t>>;

// Parses "unet:3,5;other:1" (model:versions, ';' between models).
absl::StatusOr<VersionPins> ParseVersionPins(const std::string& text);

// Returns the versions of `model` to try to serve, in the order to try them:
// with pins, the pinned versions on disk (all of them are served); without,
// every version on disk newest first, of which the first that loads is
// served. Versions in `failed` are left out (see FailedVersionsToSkip).
std::vector<int64_t> CandidateVersions(const std::string& model,
                                       const std::vector<int64_t>& on_disk,
                                       const std::set<int64_t>& failed,
                                       const VersionPins& pins);

// The wait before the first retry of a transient failure; it doubles with
// each further failure of the same files, so that a version that keeps
// failing (a GPU that stays full) costs little, up to kMaxRetryBackoff, so
// that it still comes back within minutes once it can.
inline constexpr absl::Duration kFirstRetryBackoff = absl::Seconds(1);
inline constexpr absl::Duration kMaxRetryBackoff = absl::Minutes(5);
// A version with a file modified this shortly before a failed load may still
// be being written (a copy in place rather than a rename), so whatever the
// error, it is retried.
inline constexpr absl::Duration kSettleWindow = absl::Seconds(5);

// One regular file of a version directory. A version's files, sorted by name,
// are its signature: writing, adding or removing a file changes it.
struct FileStamp {
  std::string name;
  int64_t size = 0;
  absl::Time mtime;
};
bool operator==(const FileStamp& a, const FileStamp& b);
using VersionFiles = std::vector<FileStamp>;

// Why a version did not load, and when it is tried again.
struct LoadFailure {
  // Whether it may load later as it is (I/O error, out of memory, files
  // still being written); a permanent one waits for its files to change.
  bool transient = false;
  VersionFiles files;      // the version's files when the load began
  absl::Duration backoff;  // transient: the wait until `retry_at`
  absl::Time retry_at = absl::InfiniteFuture();
};

// Returns whether a load that failed with `status` at `now`, of a version
// whose files were `files`, may succeed later without a change to its files:
// the engine reports I/O errors as UNAVAILABLE and lack of memory as
// RESOURCE_EXHAUSTED, and any error is transient while the files are newer
// than kSettleWindow. Every other failure (bad weights, bad model.json) is
// permanent.
bool IsTransientLoadFailure(const absl::Status& status,
                            const VersionFiles& files, absl::Time now);

// Returns the record of a load that failed with `status` at `now`. `previous`
// is the version's last record (nullptr: none); a transient failure of the
// same files waits twice as long as the last one, up to kMaxRetryBackoff.
LoadFailure RecordLoadFailure(const absl::Status& status, VersionFiles files,
                              absl::Time now, const LoadFailure* previous);

// Returns the failed versions to leave out of CandidateVersions at `now`.
// A failure is retried once its files differ from `current` (a version
// missing from `current`, a directory that could not be listed, counts as
// unchanged); a transient one also once `now` reaches its retry_at.
std::set<int64_t> FailedVersionsToSkip(
    const std::map<int64_t, LoadFailure>& failures,
    const std::map<int64_t, VersionFiles>& current, absl::Time now);

}  // namespace unet

#endif  // SERVER_LIFECYCLE_VERSION_POLICY_H_
