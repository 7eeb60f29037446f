#ifndef CLIENT_CLI_ATOMIC_FILE_H_
#define CLIENT_CLI_ATOMIC_FILE_H_

// Writes output files so that a reader (or a resumed run) never sees half of
// one: the bytes go to a hidden temporary file beside the target, which is
// renamed over it only when complete.

#include <filesystem>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace unet::client {

// Calls `write(temporary)` to fill a temporary file in `path`'s directory
// (same extension, so that encoders picking a format by name still work),
// then renames it to `path`. Creates the directory if needed; removes the
// temporary file when `write` fails.
absl::Status WriteAtomically(
    const std::filesystem::path& path,
    absl::FunctionRef<absl::Status(const std::filesystem::path&)> write);

// Writes `bytes` to `path` atomically.
absl::Status WriteBytesAtomically(const std::filesystem::path& path,
                                  std::string_view bytes);

}  // namespace unet::client

#endif  // CLIENT_CLI_ATOMIC_FILE_H_
