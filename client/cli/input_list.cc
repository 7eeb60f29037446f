#include "client/cli/input_list.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace unet::client {
namespace fs = std::filesystem;

std::vector<std::string> InputListOptions::DefaultImageGlobs() {
  return {"*.png", "*.tif", "*.tiff", "*.jpg", "*.jpeg", "*.bmp",
          "*.pgm", "*.ppm", "*.pnm",  "*.dcm", "*.dicom"};
}

namespace {

bool MatchesAny(const fs::path& file, const std::vector<std::string>& globs) {
  const std::string name = file.filename().string();
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& glob) {
    return fnmatch(glob.c_str(), name.c_str(), FNM_CASEFOLD) == 0;
  });
}

// `path` made absolute and free of "..", for comparing locations.
fs::path Normalised(const fs::path& path) {
  std::error_code error;
  fs::path normalised = fs::weakly_canonical(path, error);
  return error ? fs::absolute(path).lexically_normal() : normalised;
}

bool IsInside(const fs::path& path, const fs::path& directory) {
  const auto mismatch = std::mismatch(directory.begin(), directory.end(),
                                      path.begin(), path.end());
  return mismatch.first == directory.end();
}

class Lister {
 public:
  explicit Lister(const InputListOptions& options)
      : options_(options),
        output_dir_(options.output_dir.empty()
                        ? fs::path()
                        : Normalised(options.output_dir)) {}

  void AddArgument(const fs::path& argument) {
    std::error_code error;
    const fs::file_status status = fs::status(argument, error);
    if (status.type() == fs::file_type::not_found) {
      AddError(argument, absl::NotFoundError("no such file or directory"));
    } else if (error) {
      AddError(argument, absl::PermissionDeniedError(error.message()));
    } else if (fs::is_directory(status)) {
      AddDirectory(argument);
    } else {
      Add(argument, argument.stem());
    }
  }

  InputList Take() { return std::move(list_); }

 private:
  void AddDirectory(const fs::path& directory) {
    std::vector<fs::path> found;
    std::error_code error;
    fs::recursive_directory_iterator it(
        directory, fs::directory_options::skip_permission_denied, error);
    for (; !error && it != fs::recursive_directory_iterator();
         it.increment(error)) {
      if (it->is_directory() && !output_dir_.empty() &&
          IsInside(Normalised(it->path()), output_dir_)) {
        it.disable_recursion_pending();
      } else if (!it->is_directory() &&
                 MatchesAny(it->path(), options_.globs)) {
        found.push_back(it->path());
      }
    }
    if (error) {
      AddError(directory, absl::PermissionDeniedError(
                              absl::StrCat("cannot list: ", error.message())));
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& file : found) {
      const fs::path relative = file.lexically_relative(directory);
      Add(file, relative.parent_path() / relative.stem());
    }
  }

  void Add(const fs::path& path, const fs::path& output_stem) {
    if (!stems_taken_.insert(output_stem.string()).second) {
      AddError(path, absl::AlreadyExistsError(
                         absl::StrCat("an earlier input also writes ",
                                      output_stem.string(), "_*: rename one")));
      return;
    }
    list_.files.push_back({path, output_stem});
  }

  void AddError(const fs::path& path, absl::Status status) {
    list_.errors.push_back({path, std::move(status)});
  }

  const InputListOptions& options_;
  const fs::path output_dir_;
  std::set<std::string> stems_taken_;
  InputList list_;
};

}  // namespace

InputList ListInputs(const std::vector<std::string>& arguments,
                     std::istream& path_lines,
                     const InputListOptions& options) {
  Lister lister(options);
  for (const std::string& argument : arguments) {
    if (argument != "-") {
      lister.AddArgument(argument);
      continue;
    }
    for (std::string line; std::getline(path_lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) lister.AddArgument(line);
    }
  }
  return lister.Take();
}

}  // namespace unet::client
