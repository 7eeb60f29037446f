#include "common/log.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace unet {
namespace {

// Where log lines go: stderr, or its duplicate once library output is
// captured.
int log_fd = STDERR_FILENO;

bool IsPlainToken(absl::string_view value) {
  if (value.empty()) return false;
  for (char c : value) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c)) || c == '"' ||
        c == '\\' || c == '=') {
      return false;
    }
  }
  return true;
}

void WriteLine(const std::string& line) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n =
        write(log_fd, line.data() + written, line.size() - written);
    if (n <= 0) return;  // nowhere left to report it
    written += static_cast<size_t>(n);
  }
}

// Library lines logged per window; the rest are counted. A client can make
// libraries complain (each failed TLS handshake is a line of gRPC's, each
// corrupt image one of libpng's): its requests must not fill the log.
constexpr int kLibraryLinesPerWindow = 20;
constexpr absl::Duration kLibraryLineWindow = absl::Seconds(10);

class LibraryLineLimit {
 public:
  // Returns whether to log a line now; reports the lines held back in the
  // window that ended.
  bool Admit() {
    const absl::Time now = absl::Now();
    if (now - window_start_ >= kLibraryLineWindow) {
      if (suppressed_ > 0) {
        LogEvent("library_output_suppressed",
                 {{"lines", absl::StrCat(suppressed_)},
                  {"window_s",
                   absl::StrCat(absl::ToInt64Seconds(kLibraryLineWindow))}});
      }
      window_start_ = now;
      logged_ = suppressed_ = 0;
    }
    if (logged_ < kLibraryLinesPerWindow) {
      ++logged_;
      return true;
    }
    ++suppressed_;
    return false;
  }

 private:
  absl::Time window_start_ = absl::InfinitePast();
  int logged_ = 0;
  int64_t suppressed_ = 0;
};

void LogLibraryLine(LibraryLineLimit& limit, absl::string_view text) {
  if (limit.Admit()) LogEvent("library_output", {{"text", text}});
}

// Reads what libraries write to the captured stderr, a line at a time.
void ForwardLibraryOutput(int read_fd) {
  LibraryLineLimit limit;
  std::string pending;
  char buffer[4096];
  while (true) {
    const ssize_t n = read(read_fd, buffer, sizeof(buffer));
    if (n <= 0) return;
    pending.append(buffer, static_cast<size_t>(n));
    size_t end;
    while ((end = pending.find('\n')) != std::string::npos) {
      if (end > 0) {
        LogLibraryLine(limit, absl::string_view(pending).substr(0, end));
      }
      pending.erase(0, end + 1);
    }
    if (pending.size() > kMaxLogValueBytes) {
      LogLibraryLine(limit, pending);
      pending.clear();
    }
  }
}

}  // namespace

std::string LogValue(absl::string_view value) {
  const bool cut = value.size() > kMaxLogValueBytes;
  if (cut) value = value.substr(0, kMaxLogValueBytes);
  if (IsPlainToken(value) && !cut) return std::string(value);
  std::string quoted = "\"";
  for (char c : value) {
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\r':
        quoted += "\\r";
        break;
      case '\t':
        quoted += "\\t";
        break;
      default:
        // Only printable ASCII as it is: a byte beyond it may be a line
        // break to some log reader (NEL, U+2028).
        if (absl::ascii_isprint(static_cast<unsigned char>(c))) {
          quoted += c;
        } else {
          absl::StrAppendFormat(&quoted, "\\x%02x",
                                static_cast<unsigned char>(c));
        }
    }
  }
  if (cut) quoted += "...";
  quoted += '"';
  return quoted;
}

void LogEvent(absl::string_view event, std::initializer_list<LogField> fields) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " event=", event);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, " ", key, "=", LogValue(value));
  }
  line += '\n';
  WriteLine(line);
}

void CaptureLibraryOutput() {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return;
  const int original = dup(STDERR_FILENO);
  if (original < 0 || dup2(pipe_fds[1], STDERR_FILENO) < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (original >= 0) close(original);
    return;
  }
  close(pipe_fds[1]);
  std::fflush(stderr);
  log_fd = original;
  // The reader takes no signals: the server's SIGTERM handling (sigwait in
  // one thread, blocked in the others) must not find it.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  std::thread(ForwardLibraryOutput, pipe_fds[0]).detach();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace unet
