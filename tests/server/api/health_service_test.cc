#include "server/api/health_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace unet {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kService[] = "segmentation.v1.Segmentation";
constexpr int kMaxWatchers = 3;

// A Watch stream from the client's side.
struct Watch {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader;

  // The next status sent, or -1 once the stream has ended.
  int Next() {
    HealthCheckResponse response;
    return reader->Read(&response) ? response.status() : -1;
  }
};

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    health_.Shutdown();
    server_->Shutdown();
  }

  grpc::Status Check(const std::string& service, int* status) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status result = stub_->Check(&context, request, &response);
    *status = response.status();
    return result;
  }

  std::unique_ptr<Watch> StartWatch(const std::string& service) {
    auto watch = std::make_unique<Watch>();
    watch->context.set_deadline(std::chrono::system_clock::now() +
                                std::chrono::seconds(60));
    HealthCheckRequest request;
    request.set_service(service);
    watch->reader = stub_->Watch(&watch->context, request);
    return watch;
  }

  HealthService health_{{kService}, kMaxWatchers};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
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
}

TEST_F(HealthServiceTest, CheckOfAnUnknownServiceIsNotFound) {
  int status = -1;
  EXPECT_EQ(Check("no.such.Service", &status).error_code(),
            grpc::StatusCode::NOT_FOUND);
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

  auto unknown = StartWatch("no.such.Service");
  EXPECT_EQ(unknown->Next(), HealthCheckResponse::SERVICE_UNKNOWN);
}

TEST_F(HealthServiceTest, ShutdownEndsEveryWatchAndRefusesNewOnes) {
  auto watch = StartWatch("");
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(true);
  EXPECT_EQ(watch->Next(), HealthCheckResponse::SERVING);

  // As the server drains: NOT_SERVING reaches the watcher before the end.
  health_.SetServing(false);
  health_.Shutdown();
  EXPECT_EQ(watch->Next(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(watch->Next(), -1);
  EXPECT_EQ(watch->reader->Finish().error_code(),
            grpc::StatusCode::UNAVAILABLE);

  auto late = StartWatch("");
  EXPECT_EQ(late->Next(), -1);
  EXPECT_EQ(late->reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);

  // No call is left for the server's shutdown to wait for.
  const auto start = std::chrono::system_clock::now();
  server_->Shutdown(start + std::chrono::seconds(60));
  EXPECT_LT(std::chrono::system_clock::now() - start, std::chrono::seconds(30));
}

TEST_F(HealthServiceTest, WatchersAreBoundedAndACancelledOneMakesRoom) {
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < kMaxWatchers; ++i) {
    watches.push_back(StartWatch(""));
    EXPECT_EQ(watches.back()->Next(), HealthCheckResponse::NOT_SERVING);
  }
  auto refused = StartWatch("");
  EXPECT_EQ(refused->Next(), -1);
  EXPECT_EQ(refused->reader->Finish().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  watches.front()->context.TryCancel();
  EXPECT_EQ(watches.front()->Next(), -1);
  EXPECT_EQ(watches.front()->reader->Finish().error_code(),
            grpc::StatusCode::CANCELLED);
  // The server forgets it when its call is done, which may come just after
  // the client sees the cancellation.
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int status = -1;
  while (status != HealthCheckResponse::NOT_SERVING &&
         std::chrono::steady_clock::now() < give_up) {
    auto again = StartWatch("");
    status = again->Next();
  }
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
}

}  // namespace
}  // namespace unet
