#ifndef TESTS_SERVER_SERVER_PROCESS_H_
#define TESTS_SERVER_SERVER_PROCESS_H_

// Runs the real segmentation_server binary for end-to-end tests: on free
// loopback ports, with its log in a file, stopped by a signal.

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace unet::testing {

// Returns a TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Returns the contents of `path` (empty if unreadable).
std::string ReadFile(const std::filesystem::path& path);

// Runs `argv` with stdout and stderr into `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv,
            const std::filesystem::path& log);

// Waits for `pid` and returns its exit code (-1 when killed by a signal).
int WaitForExit(pid_t pid);

// Returns whether a TCP connection to 127.0.0.1:`port` is accepted.
bool CanConnect(int port);

// Sends GET `path` to 127.0.0.1:`port`; returns the HTTP status code and
// fills `body`, or -1 when the connection fails.
int HttpGet(int port, const std::string& path, std::string* body);

class ServerProcess {
 public:
  // Starts SERVER_BIN with `flags` plus --address, --port,
  // --metrics_port and --plan_seconds=1, and waits (up to a minute) until gRPC
  // health says SERVING. Tries other ports when the chosen ones were taken. The
  // log goes to TempDir()/<log_name>. channel() uses `credentials`.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& flags, const std::string& log_name,
      std::shared_ptr<grpc::ChannelCredentials> credentials =
          grpc::InsecureChannelCredentials());
  // Sends SIGKILL if the process is still running.
  ~ServerProcess();

  // Sends `signal` and returns the exit code.
  int Stop(int signal);

  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return ReadFile(log_); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  ServerProcess() = default;
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartOnFreePorts(
      const std::vector<std::string>& flags, const std::string& log_name,
      const std::shared_ptr<grpc::ChannelCredentials>& credentials);

  pid_t pid_ = 0;
  std::string address_;
  int metrics_port_ = 0;
  std::filesystem::path log_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace unet::testing

#endif  // TESTS_SERVER_SERVER_PROCESS_H_
