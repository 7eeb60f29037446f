#include "client/cli/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace unet::client {
namespace fs = std::filesystem;

absl::Status WriteAtomically(
    const fs::path& path,
    absl::FunctionRef<absl::Status(const fs::path&)> write) {
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create ", path.parent_path().string(), ": ", error.message()));
  }
  // Unique per process and call, so that concurrent jobs never share one.
  static std::atomic<int> counter{0};
  const fs::path temporary =
      path.parent_path() / absl::StrCat(".", path.stem().string(), ".",
                                        getpid(), "-", counter++, ".partial",
                                        path.extension().string());
  if (absl::Status written = write(temporary); !written.ok()) {
    fs::remove(temporary, error);
    return written;
  }
  fs::rename(temporary, path, error);
  if (error) {
    fs::remove(temporary, error);
    return absl::InternalError(
        absl::StrCat("cannot write ", path.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteBytesAtomically(const fs::path& path,
                                  std::string_view bytes) {
  return WriteAtomically(path, [&](const fs::path& temporary) {
    std::ofstream file(temporary, std::ios::binary);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!file.flush()) {
      return absl::InternalError(
          absl::StrCat("cannot write ", temporary.string()));
    }
    return absl::OkStatus();
  });
}

}  // namespace unet::client
