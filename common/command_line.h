#ifndef COMMON_COMMAND_LINE_H_
#define COMMON_COMMAND_LINE_H_

// What Abseil's flags do not say in the Debian version (20220623): whether
// the user gave a flag at all, for defaults that depend on what the program
// finds (the device) rather than on a fixed value.

#include "absl/strings/string_view.h"

namespace unet {

// Whether argv[1..argc) sets flag `name` as --name, --name=VALUE,
// --noname (one dash too), before a "--" that ends the flags.
bool FlagGivenOnCommandLine(int argc, char** argv, absl::string_view name);

}  // namespace unet

#endif  // COMMON_COMMAND_LINE_H_
