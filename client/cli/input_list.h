#ifndef CLIENT_CLI_INPUT_LIST_H_
#define CLIENT_CLI_INPUT_LIST_H_

// Turns the command line's inputs (files, directories, "-" for paths on
// stdin) into the list of images to segment and where each one's outputs go.

#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace unet::client {

struct InputFile {
  std::filesystem::path path;
  // Where its outputs go below the output directory, without extension:
  // "sub/a" for DIR/sub/a.png found under the argument DIR, "a" for a file
  // named on the command line.
  std::filesystem::path output_stem;
};

// An input that cannot be segmented, and why.
struct InputError {
  std::filesystem::path path;
  absl::Status status;
};

struct InputList {
  std::vector<InputFile> files;
  std::vector<InputError> errors;
};

struct InputListOptions {
  // File-name patterns (fnmatch, case-insensitive) that files found in
  // directories must match; files named explicitly are always taken.
  std::vector<std::string> globs = DefaultImageGlobs();
  // Never descended into, so that a run writing into its input tree does not
  // segment its own outputs when run again.
  std::filesystem::path output_dir;

  static std::vector<std::string> DefaultImageGlobs();
};

// Expands `arguments` in order: a directory recursively (sorted, following
// no symbolic links to directories), "-" as one path per line of `path_lines`.
// Missing paths, unreadable directories and inputs whose outputs would
// collide with an earlier input's become errors, not a stop.
InputList ListInputs(const std::vector<std::string>& arguments,
                     std::istream& path_lines, const InputListOptions& options);

}  // namespace unet::client

#endif  // CLIENT_CLI_INPUT_LIST_H_
