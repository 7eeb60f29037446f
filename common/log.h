#ifndef COMMON_LOG_H_
#define COMMON_LOG_H_

// One structured line per event on stderr:
//   2026-11-25T19:08:40.123Z event=model_loaded model=unet version=1
// Callers pass identifiers and numbers only, never pixel data. Values may
// come from clients: each is escaped (control characters, backslash,
// quotes) and capped at kMaxLogValueBytes, so that one event is always one
// line and no value can forge another.

#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace unet {

using LogField = std::pair<absl::string_view, absl::string_view>;

inline constexpr size_t kMaxLogValueBytes = 256;

// Writes `event` and its fields as one line.
void LogEvent(absl::string_view event, std::initializer_list<LogField> fields);

// Returns `value` as it appears in a log line: bare when it is a plain
// token, otherwise quoted with \" \\ \n \r \t and \xNN escapes; longer
// values are cut at kMaxLogValueBytes and marked with "...".
std::string LogValue(absl::string_view value);

// Routes what libraries write to stderr (libpng's and libjpeg's complaints
// about a client's bytes, gRPC's own messages) through LogEvent as escaped
// `event=library_output` lines, so that nothing reaches the log unescaped.
// At most 20 such lines per 10 s: what a client provokes (failed TLS
// handshakes, corrupt images) cannot fill the log; the lines held back are
// counted in an `event=library_output_suppressed` line.
// Call once at start-up, before other threads run.
void CaptureLibraryOutput();

}  // namespace unet

#endif  // COMMON_LOG_H_
