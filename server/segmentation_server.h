#ifndef SERVER_SEGMENTATION_SERVER_H_
#define SERVER_SEGMENTATION_SERVER_H_

// Assembles the server: metrics and HTTP endpoints, model manager, executor,
// gRPC service, health and reflection; serves until SIGINT or SIGTERM, then
// drains.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "server/segment_executor.h"
#include "server/segmentation_service.h"

namespace unet {

struct ServerOptions {
  std::string address = "0.0.0.0";
  int port = 50051;
  std::string model_root;
  std::string default_model;  // empty: the root's only model
  std::string device;         // empty: cuda when available, else cpu
  ServiceOptions service;
  ExecutorOptions executor;
  // Large enough for a 16-bit 4096x4096 image, raw or PNG.
  int max_receive_message_bytes = 64 << 20;
  int drain_timeout_s = 30;  // for in-flight requests at shutdown
  // HTTP: /metrics, /healthz, /readyz (port 0: any free port).
  std::string metrics_address = "0.0.0.0";
  int metrics_port = 9090;
};

// Starts listening (health NOT_SERVING), loads the models, turns SERVING,
// and after SIGTERM or SIGINT stops accepting, finishes the queued and
// in-flight requests and returns OK. Fails when no default model loads or a
// port is taken.
absl::Status RunServer(const ServerOptions& options);

}  // namespace unet

#endif  // SERVER_SEGMENTATION_SERVER_H_
