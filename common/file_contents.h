#ifndef COMMON_FILE_CONTENTS_H_
#define COMMON_FILE_CONTENTS_H_

// Reads a whole file: certificates, token files, inputs.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace unet {

// Returns the bytes of `path`; NOT_FOUND "cannot read <what> <path>" when
// it cannot be read (`what` names it for the message, e.g. "--tls_cert").
absl::StatusOr<std::string> ReadFileContents(const std::string& path,
                                             absl::string_view what);

}  // namespace unet

#endif  // COMMON_FILE_CONTENTS_H_
