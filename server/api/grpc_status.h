#ifndef SERVER_API_GRPC_STATUS_H_
#define SERVER_API_GRPC_STATUS_H_

// The one place where the code base's absl::Status becomes a gRPC status.
// Abseil's codes are gRPC's codes, so the conversion is a cast.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace unet {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace unet

#endif  // SERVER_API_GRPC_STATUS_H_
