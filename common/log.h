#ifndef COMMON_LOG_H_
#define COMMON_LOG_H_

// One structured line per event on stderr:
//   2026-11-25T19:08:40.123Z event=model_loaded model=unet version=1
// Callers pass identifiers and numbers only, never pixel data.

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace unet {

using LogField = std::pair<absl::string_view, absl::string_view>;

// Writes `event` and its fields as one line; values with spaces are quoted.
void LogEvent(absl::string_view event, std::initializer_list<LogField> fields);

}  // namespace unet

#endif  // COMMON_LOG_H_
