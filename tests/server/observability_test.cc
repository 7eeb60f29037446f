// End to end: what operators see. Metrics move with traffic and pass
// promtool, a real Prometheus scrapes them, /healthz and /readyz answer, and
// SIGTERM under load loses no accepted request.

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "tests/server/server_process.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::ModelInfo;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;
using ::testing::HasSubstr;

const fs::path kImage = UNET_TEST_DATA_DIR "/isbi_train_0.png";

// Returns the value of the series `series` (name{labels} exactly as exposed,
// labels sorted) in a text exposition, or -1 when absent.
double SeriesValue(const std::string& exposition, const std::string& series) {
  const std::string prefix = series + " ";
  size_t at = 0;
  while ((at = exposition.find(prefix, at)) != std::string::npos) {
    if (at == 0 || exposition[at - 1] == '\n') {
      const size_t end = exposition.find('\n', at);
      double value = -1;
      if (absl::SimpleAtod(
              exposition.substr(at + prefix.size(), end - at - prefix.size()),
              &value)) {
        return value;
      }
    }
    at += prefix.size();
  }
  return -1;
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += c;
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

SegmentRequest ImageRequest(const std::string& encoded) {
  SegmentRequest request;
  request.mutable_image()->set_encoded(encoded);
  return request;
}

grpc::Status Segment(const std::shared_ptr<grpc::Channel>& channel,
                     const SegmentRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(120));
  SegmentResponse response;
  return Segmentation::NewStub(channel)->Segment(&context, request, &response);
}

// Writes a TorchScript U-Net of the given width as <root>/unet/1.
void ExportModel(const fs::path& root, int width) {
  fs::remove_all(root);
  const std::string command = absl::StrCat(
      UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
      " --model_root ", root.string(), " --width ", width, " > /dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0);
}

class ObservabilityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::path(::testing::TempDir()) / "obs_models");
    ExportModel(*root_, 2);
    auto server = testing::ServerProcess::Start(
        {"--model_root=" + root_->string(), "--device=cpu"},
        "observability_server.log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    if (server_ == nullptr) return;  // SetUpTestSuite failed and said why
    EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->log();
    delete server_;
    delete root_;
  }

  static std::string Scrape() {
    std::string body;
    EXPECT_EQ(testing::HttpGet(server_->metrics_port(), "/metrics", &body),
              200);
    return body;
  }

  static fs::path* root_;
  static testing::ServerProcess* server_;
};

fs::path* ObservabilityTest::root_ = nullptr;
testing::ServerProcess* ObservabilityTest::server_ = nullptr;

TEST_F(ObservabilityTest, CountersAndHistogramsMoveWithTraffic) {
  const std::string ok_calls =
      R"(segmentation_requests_total{code="OK",method="Segment",model="unet"})";
  const std::string bad_calls =
      R"(segmentation_requests_total{code="INVALID_ARGUMENT",method="Segment",model="unet"})";
  const std::string unknown_calls =
      R"(segmentation_requests_total{code="NOT_FOUND",method="Segment",model="unknown"})";
  const std::string latency_count =
      R"(segmentation_request_duration_seconds_count{method="Segment",model="unet"})";
  const std::string inference_count =
      R"(segmentation_inference_duration_seconds_count{model="unet"})";
  const std::string batch_count =
      R"(segmentation_batch_size_count{model="unet"})";
  const std::string info_calls =
      R"(segmentation_requests_total{code="OK",method="GetModelInfo",model="unet"})";
  const std::string before = Scrape();

  const std::string image = testing::ReadFile(kImage);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Segment(server_->channel(), ImageRequest(image)).ok());
  }
  EXPECT_EQ(Segment(server_->channel(), ImageRequest("garbage")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  SegmentRequest unknown = ImageRequest(image);
  unknown.set_model("no-such-model");
  EXPECT_EQ(Segment(server_->channel(), unknown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext context;
  ModelInfo info;
  ASSERT_TRUE(Segmentation::NewStub(server_->channel())
                  ->GetModelInfo(&context, GetModelInfoRequest(), &info)
                  .ok());

  const std::string after = Scrape();
  EXPECT_EQ(SeriesValue(after, ok_calls) - SeriesValue(before, ok_calls), 3);
  EXPECT_EQ(SeriesValue(after, bad_calls) - SeriesValue(before, bad_calls), 1);
  EXPECT_EQ(
      SeriesValue(after, unknown_calls) - SeriesValue(before, unknown_calls),
      1);
  EXPECT_EQ(
      SeriesValue(after, latency_count) - SeriesValue(before, latency_count),
      4);
  EXPECT_EQ(SeriesValue(after, inference_count) -
                SeriesValue(before, inference_count),
            3);
  EXPECT_EQ(SeriesValue(after, batch_count) - SeriesValue(before, batch_count),
            3);
  EXPECT_EQ(SeriesValue(after, info_calls) - SeriesValue(before, info_calls),
            1);
  EXPECT_EQ(SeriesValue(after, "segmentation_requests_in_flight"), 0);
  EXPECT_EQ(SeriesValue(after, "segmentation_queue_depth"), 0);
  EXPECT_EQ(SeriesValue(after, "segmentation_queue_bytes"), 0);
  EXPECT_GT(SeriesValue(after, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(SeriesValue(after, "process_open_fds"), 3);
  EXPECT_EQ(
      SeriesValue(
          after,
          R"(segmentation_model_version_info{device="cpu",format="torchscript",model="unet",version="1"})"),
      1);
  EXPECT_EQ(
      SeriesValue(
          after,
          R"(segmentation_model_load_duration_seconds_count{model="unet"})"),
      1);
}

TEST_F(ObservabilityTest, ExpositionPassesPromtool) {
  const fs::path file = fs::path(::testing::TempDir()) / "exposition.txt";
  std::ofstream(file) << Scrape();
  const std::string command =
      absl::StrCat("promtool check metrics < ", file.string(), " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  EXPECT_EQ(pclose(pipe), 0) << output;
}

TEST_F(ObservabilityTest, LogsOneLinePerRequestWithoutPatientData) {
  grpc::ClientContext context;
  context.AddMetadata("x-patient-name", "Jane Roe");
  SegmentRequest request = ImageRequest(testing::ReadFile(kImage));
  request.set_request_id("log-check-42");
  SegmentResponse response;
  ASSERT_TRUE(Segmentation::NewStub(server_->channel())
                  ->Segment(&context, request, &response)
                  .ok());
  const std::string log = server_->log();
  const size_t line_start = log.find("request_id=log-check-42");
  ASSERT_NE(line_start, std::string::npos) << log;
  const std::string line =
      log.substr(line_start, log.find('\n', line_start) - line_start);
  for (const char* field : {"model=unet", "version=1", "code=OK",
                            "total_us=", "inference_us=", "batch_size=1"}) {
    EXPECT_THAT(line, HasSubstr(field));
  }
  EXPECT_THAT(log, ::testing::Not(HasSubstr("Jane")));
}

TEST_F(ObservabilityTest, HealthAndReadinessOverHttp) {
  std::string body;
  EXPECT_EQ(testing::HttpGet(server_->metrics_port(), "/healthz", &body), 200);
  EXPECT_EQ(testing::HttpGet(server_->metrics_port(), "/readyz", &body), 200);
  EXPECT_EQ(body, "ready\n");
}

TEST_F(ObservabilityTest, RealPrometheusScrapesTheRequestCount) {
  const fs::path dir = fs::path(::testing::TempDir()) / "prometheus";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n"
         "scrape_configs:\n  - job_name: segmentation\n"
         "    static_configs:\n      - targets: ['127.0.0.1:"
      << server_->metrics_port() << "']\n";
  const int port = testing::FreePort();
  const pid_t prometheus =
      testing::Spawn({"/usr/bin/prometheus",
                      "--config.file=" + (dir / "prometheus.yml").string(),
                      "--storage.tsdb.path=" + (dir / "data").string(),
                      absl::StrCat("--web.listen-address=127.0.0.1:", port)},
                     dir / "prometheus.log");

  const std::string image = testing::ReadFile(kImage);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Segment(server_->channel(), ImageRequest(image)).ok());
  }
  const double served = SeriesValue(
      Scrape(),
      R"(segmentation_requests_total{code="OK",method="Segment",model="unet"})");
  ASSERT_GE(served, 2);

  const std::string query = absl::StrCat(
      "/api/v1/query?query=",
      UrlEncode(
          R"(sum(segmentation_requests_total{method="Segment",code="OK"}))"));
  const std::regex value(R"re("value":\[[0-9.]+,"([0-9.]+)"\])re");
  double seen = -1;
  std::string body;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen < served && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::smatch match;
    if (testing::HttpGet(port, query, &body) == 200 &&
        std::regex_search(body, match, value)) {
      absl::SimpleAtod(match[1].str(), &seen);
    }
  }
  kill(prometheus, SIGTERM);
  testing::WaitForExit(prometheus);
  EXPECT_GE(seen, served) << body << "\n"
                          << testing::ReadFile(dir / "prometheus.log");
}

TEST(GracefulShutdownTest, SigtermUnderLoadLosesNoAcceptedRequest) {
  const fs::path root = fs::path(::testing::TempDir()) / "drain_models";
  ExportModel(root, 4);
  auto server =
      testing::ServerProcess::Start({"--model_root=" + root.string(),
                                     "--device=cpu", "--drain_timeout_s=120"},
                                    "drain_server.log");
  ASSERT_TRUE(server.ok()) << server.status();
  const auto& process = *server;

  // A client's health watch, open across the drain.
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(300));
  auto watch = grpc::health::v1::Health::NewStub(process->channel())
                   ->Watch(&watch_context, {});
  grpc::health::v1::HealthCheckResponse watched;
  ASSERT_TRUE(watch->Read(&watched));
  EXPECT_EQ(watched.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  constexpr int kCalls = 12;
  const std::string image = testing::ReadFile(kImage);
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::async(std::launch::async, [&] {
      return Segment(process->channel(), ImageRequest(image));
    }));
  }
  // Wait until the server has accepted every call, then ask it to stop.
  std::string body;
  double in_flight = 0;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (in_flight < kCalls && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    testing::HttpGet(process->metrics_port(), "/metrics", &body);
    in_flight = SeriesValue(body, "segmentation_requests_in_flight");
  }
  ASSERT_EQ(in_flight, kCalls);
  // They wait in a queue measured in bytes of network input too.
  double queue_bytes = 0;
  while (queue_bytes == 0 && std::chrono::steady_clock::now() < give_up) {
    testing::HttpGet(process->metrics_port(), "/metrics", &body);
    queue_bytes = SeriesValue(body, "segmentation_queue_bytes");
  }
  EXPECT_GT(queue_bytes, 0);
  kill(process->pid(), SIGTERM);
  const auto stopping = std::chrono::steady_clock::now();
  // While it drains, load balancers are told to look elsewhere.
  int readiness = 0;
  for (int i = 0; i < 200 && readiness != 503; ++i) {
    readiness = testing::HttpGet(process->metrics_port(), "/readyz", &body);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(readiness, 503);
  // The watch hears it too, and ends rather than hold the drain up.
  ASSERT_TRUE(watch->Read(&watched));
  EXPECT_EQ(watched.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&watched));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // Well before --drain_timeout_s, when gRPC would cancel it.
  EXPECT_LT(std::chrono::steady_clock::now() - stopping,
            std::chrono::seconds(60));

  for (auto& call : calls) {
    const grpc::Status status = call.get();
    EXPECT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
  }
  EXPECT_EQ(process->Stop(SIGTERM), 0) << process->log();
  EXPECT_THAT(process->log(), HasSubstr("event=draining"));
  EXPECT_THAT(process->log(), HasSubstr("event=stopped"));
  // Once stopped, nothing is accepted.
  EXPECT_FALSE(Segment(process->channel(), ImageRequest(image)).ok());
}

TEST(LifecycleTest, NotServingUntilTheModelIsLoadedAndWarm) {
  // A full-width U-Net (31 M parameters) takes a while to load and check.
  const fs::path root = fs::path(::testing::TempDir()) / "slow_models";
  ExportModel(root, 64);
  const int port = testing::FreePort(), metrics_port = testing::FreePort();
  const fs::path log_path = fs::path(::testing::TempDir()) /
                            absl::StrCat("slow_server_", getpid(), ".log");
  const pid_t pid = testing::Spawn(
      {SERVER_BIN, "--address=127.0.0.1", absl::StrCat("--port=", port),
       "--metrics_address=127.0.0.1",
       absl::StrCat("--metrics_port=", metrics_port),
       "--model_root=" + root.string(), "--device=cpu",
       // A fixed plan: the planner runs before the port listens, so its
       // passes would not widen the window this test watches.
       "--instances=1"},
      log_path);
  // Connect only once the port listens, so that the channel is not in
  // reconnect back-off while the model loads.
  std::string body;
  while (!testing::CanConnect(port)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  std::set<int> seen;  // health states observed, in order of first sight
  std::vector<int> order;
  bool not_ready_over_http = false;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(500));
    grpc::health::v1::HealthCheckResponse response;
    if (health->Check(&context, {}, &response).ok()) {
      if (seen.insert(response.status()).second) {
        order.push_back(response.status());
      }
      if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING &&
          testing::HttpGet(metrics_port, "/readyz", &body) == 503) {
        not_ready_over_http = true;
      }
      if (response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGTERM);
  EXPECT_EQ(testing::WaitForExit(pid), 0);
  EXPECT_EQ(order, (std::vector<int>{
                       grpc::health::v1::HealthCheckResponse::NOT_SERVING,
                       grpc::health::v1::HealthCheckResponse::SERVING}))
      << testing::ReadFile(log_path);
  EXPECT_TRUE(not_ready_over_http);
}

}  // namespace
}  // namespace unet
