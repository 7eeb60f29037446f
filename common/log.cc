#include "common/log.h"

#include <iostream>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace unet {
namespace {

void AppendValue(std::string& line, absl::string_view value) {
  if (value.find_first_of(" \"=") == absl::string_view::npos &&
      !value.empty()) {
    absl::StrAppend(&line, value);
    return;
  }
  absl::StrAppend(&line, "\"", absl::StrReplaceAll(value, {{"\"", "\\\""}}),
                  "\"");
}

}  // namespace

void LogEvent(absl::string_view event, std::initializer_list<LogField> fields) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " event=", event);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, " ", key, "=");
    AppendValue(line, value);
  }
  line += '\n';
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::cerr << line << std::flush;
}

}  // namespace unet
