// Mapping of moe::Status to grpc::Status: the only place codes cross into gRPC (DESIGN.md §7).
#pragma once

#include <grpcpp/grpcpp.h>

#include "core/status.h"

namespace moe::serving {

grpc::Status ToGrpcStatus(const Status& status);
// The gRPC code's canonical name ("INVALID_ARGUMENT"), for logs and metrics labels.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace moe::serving
