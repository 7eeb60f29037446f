#include "tests/server/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace unet::testing {
namespace fs = std::filesystem;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const fs::path& log) {
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed (no malloc), as other
  // threads of this process may hold its locks.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_path = log.string();
  const pid_t pid = fork();
  if (pid == 0) {
    const int out =
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(out, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int WaitForExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

namespace {

// Returns a socket connected to 127.0.0.1:`port`, or -1.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool CanConnect(int port) {
  const int fd = Connect(port);
  if (fd < 0) return false;
  close(fd);
  return true;
}

int HttpGet(int port, const std::string& path, std::string* body) {
  const int fd = Connect(port);
  if (fd < 0) return -1;
  const std::string request =
      absl::StrCat("GET ", path,
                   " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) < 0) {
    close(fd);
    return -1;
  }
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) {
    response.append(buffer, n);
  }
  close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const size_t header_end = response.find("\r\n\r\n");
  int status = -1;
  if (response.size() < 12 || header_end == std::string::npos ||
      !absl::SimpleAtoi(response.substr(9, 3), &status)) {
    return -1;
  }
  *body = response.substr(header_end + 4);
  return status;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& flags, const std::string& log_name,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  // A port free a moment ago may be taken by another test's server before
  // this one binds it (FreePort races): then try other ports.
  absl::StatusOr<std::unique_ptr<ServerProcess>> server;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server = StartOnFreePorts(flags, log_name, credentials);
    if (server.ok() ||
        server.status().message().find("cannot listen") == std::string::npos) {
      break;
    }
  }
  return server;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::StartOnFreePorts(
    const std::vector<std::string>& flags, const std::string& log_name,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  const int port = FreePort();
  server->metrics_port_ = FreePort();
  server->address_ = absl::StrCat("127.0.0.1:", port);
  server->log_ = fs::path(::testing::TempDir()) / log_name;
  std::vector<std::string> argv = {
      SERVER_BIN, "--address=127.0.0.1", absl::StrCat("--port=", port),
      "--metrics_address=127.0.0.1",
      absl::StrCat("--metrics_port=", server->metrics_port_),
      // Servers left to plan on CPUs do it briefly: the tests only check
      // that a plan is measured and kept, not which.
      "--plan_seconds=1"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  server->pid_ = Spawn(argv, server->log_);
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::minutes(1);
  // The channel is made once the port listens: a gRPC channel that failed
  // to connect waits 20 s (its minimum connect timeout) before trying again.
  while (!CanConnect(port) && std::chrono::steady_clock::now() < give_up) {
    if (waitpid(server->pid_, nullptr, WNOHANG) == server->pid_) {
      server->pid_ = 0;
      return absl::InternalError("server exited:\n" + server->log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  server->channel_ = grpc::CreateChannel(server->address_, credentials);
  auto health = grpc::health::v1::Health::NewStub(server->channel_);
  while (std::chrono::steady_clock::now() < give_up) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(1));
    grpc::health::v1::HealthCheckResponse response;
    if (health->Check(&context, {}, &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return server;
    }
    if (waitpid(server->pid_, nullptr, WNOHANG) == server->pid_) {
      server->pid_ = 0;
      return absl::InternalError("server exited:\n" + server->log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError("server not SERVING:\n" + server->log());
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitForExit(pid_);
  }
}

int ServerProcess::Stop(int signal) {
  kill(pid_, signal);
  const int code = WaitForExit(pid_);
  pid_ = 0;
  return code;
}

}  // namespace unet::testing
