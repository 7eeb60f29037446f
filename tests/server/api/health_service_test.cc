#include "server/api/health_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace unet {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kService[] = "segmentation.v1.Segmentation";
constexpr HealthWatchLimits kLimits{/*total=*/3, /*per_host=*/2};

// A Watch stream from the client's side.
struct Watch {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader;

  // The next status sent, or -1 once the stream has ended.
  int Next() {
    HealthCheckResponse response;
    return reader->Read(&response) ? response.status() : -1;
  }
  grpc::StatusCode Ended() {
    EXPECT_EQ(Next(), -1);
    return reader->Finish().error_code();
  }
};

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    // A second kind of peer, as if from another host.
    builder.AddListeningPort(socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    tcp_ = Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                            grpc::InsecureChannelCredentials()));
    unix_ = Health::NewStub(
        grpc::CreateChannel(socket_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    health_.Shutdown();
    if (server_ != nullptr) server_->Shutdown();
  }

  grpc::Status Check(const std::string& service, int* status) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status result = tcp_->Check(&context, request, &response);
    *status = response.status();
    return result;
  }

  std::unique_ptr<Watch> StartWatch(const std::string& service,
                                    Health::Stub* stub = nullptr) {
    auto watch = std::make_unique<Watch>();
    watch->context.set_deadline(std::chrono::system_clock::now() +
                                std::chrono::seconds(60));
    HealthCheckRequest request;
    request.set_service(service);
    watch->reader =
        (stub != nullptr ? stub : tcp_.get())->Watch(&watch->context, request);
    return watch;
  }

  const std::string socket_ = "unix:" + ::testing::TempDir() + "health_" +
                              std::to_string(getpid()) + ".sock";
  HealthService health_{{kService}, kLimits};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> tcp_, unix_;
};

TEST_F(HealthServiceTest, ChecksSayNotServingUntilTold) {
  // gRPC's built-in service says SERVING here, before the server has said
  // anything: a probe in that window saw a server with no model loaded.
  int status = -1;
  ASSERT_TRUE(Check("", &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(Check(kService, &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);

  health_.SetServing(true);
  ASSERT_TRUE(Check("", &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check(kService, &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::SERVING);

  health_.SetServing(false);
  ASSERT_TRUE(Check(kService, &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);

  // Once shut down, it stays NOT_SERVING.
  health_.SetServing(true);
  health_.Shutdown();
  health_.SetServing(true);
  ASSERT_TRUE(Check("", &status).ok());
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, RefusesUnknownServicesAndLongNames) {
  int status = -1;
  EXPECT_EQ(Check("no.such.Service", &status).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::string long_name(kMaxHealthServiceNameBytes + 1, 'a');
  EXPECT_EQ(Check(long_name, &status).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // An open Watch keeps its request: a long name is not watched.
  EXPECT_EQ(StartWatch(long_name)->Ended(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(HealthServiceTest, WatchSendsTheStatusThenEachChange) {
  auto watch = StartWatch(kService);
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(true);
  EXPECT_EQ(watch->Next(), HealthCheckResponse::SERVING);
  // The same status again is no change: the next message is the change.
  health_.SetServing(true);
  health_.SetServing(false);
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceStaysOpen) {
  auto watch = StartWatch("no.such.Service");
  EXPECT_EQ(watch->Next(), HealthCheckResponse::SERVICE_UNKNOWN);
  health_.SetServing(true);  // not its service: nothing to say
  health_.Shutdown();
  EXPECT_EQ(watch->Ended(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(HealthServiceTest, ShutdownEndsEveryWatchAndRefusesNewOnes) {
  auto watch = StartWatch("");
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(true);
  EXPECT_EQ(watch->Next(), HealthCheckResponse::SERVING);

  // NOT_SERVING reaches the watcher before the end.
  health_.Shutdown();
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(watch->Ended(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StartWatch("")->Ended(), grpc::StatusCode::UNAVAILABLE);

  // No call is left for the server's shutdown to wait for.
  const auto start = std::chrono::system_clock::now();
  server_->Shutdown(start + std::chrono::seconds(60));
  EXPECT_LT(std::chrono::system_clock::now() - start, std::chrono::seconds(30));
}

TEST_F(HealthServiceTest, WatchersAreBoundedPerHostAndInAll) {
  // Each from its own connection: the bound is the host's, not the port's.
  std::vector<std::unique_ptr<Health::Stub>> connections;
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i <= kLimits.per_host; ++i) {
    grpc::ChannelArguments own_connection;
    own_connection.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    connections.push_back(Health::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port_),
        grpc::InsecureChannelCredentials(), own_connection)));
    watches.push_back(StartWatch("", connections.back().get()));
  }
  for (int i = 0; i < kLimits.per_host; ++i) {
    EXPECT_EQ(watches[i]->Next(), HealthCheckResponse::NOT_SERVING);
  }
  EXPECT_EQ(watches.back()->Ended(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another host still gets one, up to the total.
  auto other_host = StartWatch("", unix_.get());
  EXPECT_EQ(other_host->Next(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(StartWatch("", unix_.get())->Ended(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  watches.front()->context.TryCancel();
  EXPECT_EQ(watches.front()->Ended(), grpc::StatusCode::CANCELLED);
  // The server forgets it when its call is done, which may come just after
  // the client sees the cancellation.
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int status = -1;
  while (status != HealthCheckResponse::NOT_SERVING &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    status = StartWatch("")->Next();
  }
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
}

}  // namespace
}  // namespace unet
