#include "common/file_contents.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace unet {

absl::StatusOr<std::string> ReadFileContents(const std::string& path,
                                             absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  }
  return contents.str();
}

}  // namespace unet
