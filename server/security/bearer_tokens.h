#ifndef SERVER_SECURITY_BEARER_TOKENS_H_
#define SERVER_SECURITY_BEARER_TOKENS_H_

// Bearer-token authentication ("authorization: Bearer TOKEN"). The tokens
// file holds one token per line ('#' starts a comment); it is read again
// when it changes, so tokens are added and revoked without a restart.
// Only SHA-256 digests of the tokens are kept, and a presented token is
// compared with every one of them in constant time. No token, presented or
// stored, ever goes into a status message or a log.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace unet {

// Tokens shorter than this are refused when the file is read: a bearer
// token must not be guessable.
inline constexpr size_t kMinTokenBytes = 16;

class BearerTokens {
 public:
  // Reads `path`; fails when it is unreadable, holds no token, or holds a
  // token that is too short or has characters a header cannot carry.
  // The file is looked at again at most every `recheck` when calls come.
  static absl::StatusOr<std::unique_ptr<BearerTokens>> Load(
      std::string path, absl::Duration recheck = absl::Seconds(1));

  // OK when `authorization` (the header's value; empty when absent) is
  // "Bearer <token>" with a token of the file; else UNAUTHENTICATED.
  // When the file has changed into one that cannot be read or is invalid,
  // every call is refused until it is fixed (fail closed).
  absl::Status Check(absl::string_view authorization);

 private:
  using Digest = std::array<uint8_t, 32>;
  struct FileStamp {
    int64_t device = 0, inode = 0, size = 0, modified_ns = 0;
    bool operator==(const FileStamp& o) const {
      return device == o.device && inode == o.inode && size == o.size &&
             modified_ns == o.modified_ns;
    }
  };

  BearerTokens(std::string path, absl::Duration recheck)
      : path_(std::move(path)), recheck_(recheck) {}
  // Reads the file into digests_ when its stamp changed since the last
  // read; returns the outcome of the last read.
  absl::Status Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<std::vector<std::array<uint8_t, 32>>> ReadDigests() const;

  const std::string path_;
  const absl::Duration recheck_;
  absl::Mutex mutex_;
  absl::Time checked_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  FileStamp stamp_ ABSL_GUARDED_BY(mutex_);
  absl::Status last_read_ ABSL_GUARDED_BY(mutex_) =
      absl::UnknownError("not read yet");
  std::vector<Digest> digests_ ABSL_GUARDED_BY(mutex_);  // empty: refuse all
};

}  // namespace unet

#endif  // SERVER_SECURITY_BEARER_TOKENS_H_
