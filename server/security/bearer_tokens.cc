#include "server/security/bearer_tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_contents.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace unet {
namespace {

constexpr absl::string_view kScheme = "bearer ";

// RFC 6750's b64token: what a bearer token may be made of.
bool IsTokenCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::StrContains("-._~+/=", c);
}

std::array<uint8_t, 32> Sha256(absl::string_view bytes) {
  std::array<uint8_t, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         digest.data());
  return digest;
}

absl::Status Unauthenticated() {
  return absl::UnauthenticatedError(
      "a valid \"authorization: Bearer <token>\" header is required");
}

}  // namespace

absl::StatusOr<std::unique_ptr<BearerTokens>> BearerTokens::Load(
    std::string path, absl::Duration recheck) {
  std::unique_ptr<BearerTokens> tokens(
      new BearerTokens(std::move(path), recheck));
  absl::MutexLock lock(&tokens->mutex_);
  if (absl::Status read = tokens->Refresh(); !read.ok()) return read;
  return tokens;
}

absl::Status BearerTokens::Refresh() {
  struct stat info;
  FileStamp stamp;  // all zero: no file
  if (stat(path_.c_str(), &info) == 0) {
    stamp = {static_cast<int64_t>(info.st_dev),
             static_cast<int64_t>(info.st_ino),
             static_cast<int64_t>(info.st_size),
             int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec};
  }
  if (stamp == stamp_ && !absl::IsUnknown(last_read_)) return last_read_;
  stamp_ = stamp;
  absl::StatusOr<std::vector<Digest>> digests = ReadDigests();
  last_read_ = digests.status();
  if (digests.ok()) {
    digests_ = *std::move(digests);
  } else {
    digests_.clear();
  }
  return last_read_;
}

absl::StatusOr<std::vector<BearerTokens::Digest>> BearerTokens::ReadDigests()
    const {
  ASSIGN_OR_RETURN(const std::string contents,
                   ReadFileContents(path_, "the tokens file"));
  std::vector<Digest> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    // The line number, never the token, says which one is wrong.
    if (line.size() < kMinTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, " line ", line_number, ": a token needs at least ",
          kMinTokenBytes, " characters"));
    }
    for (char c : line) {
      if (!IsTokenCharacter(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path_, " line ", line_number,
            ": a token may hold only letters, digits and -._~+/="));
      }
    }
    digests.push_back(Sha256(line));
  }
  if (digests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, " holds no token"));
  }
  return digests;
}

absl::Status BearerTokens::Check(absl::string_view authorization) {
  // Digests of equal length, compared in full against every token: the time
  // taken says nothing about how much of a token was right.
  const bool has_scheme =
      authorization.size() > kScheme.size() &&
      absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme);
  const Digest presented = Sha256(
      has_scheme
          ? absl::StripAsciiWhitespace(authorization.substr(kScheme.size()))
          : absl::string_view());
  absl::MutexLock lock(&mutex_);
  const absl::Time now = absl::Now();
  if (now - checked_ >= recheck_) {
    checked_ = now;
    const FileStamp before = stamp_;
    const absl::Status read = Refresh();
    if (!(stamp_ == before)) {
      // Once per change of the file: what was read, never a token.
      LogEvent("auth_tokens_reloaded",
               {{"code", absl::StatusCodeToString(read.code())},
                {"tokens", absl::StrCat(digests_.size())},
                {"message", read.ok() ? "" : read.message()}});
    }
  }
  int matches = 0;
  for (const Digest& digest : digests_) {
    matches +=
        CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0;
  }
  if (!has_scheme || matches == 0) return Unauthenticated();
  return absl::OkStatus();
}

}  // namespace unet
