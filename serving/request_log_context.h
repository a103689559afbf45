// Fills the parts of a RequestRecord that come from the gRPC call: when the reactor saw the
// request, the client's address and its deadline. Kept apart from request_log_record.h so that
// header stays free of gRPC.
#pragma once

#include <grpcpp/grpcpp.h>

#include "serving/request_log_record.h"

namespace moe::serving {

void NoteCallContext(const grpc::ServerContextBase& context, RequestRecord* record);

// The gRPC code and message a request ended with.
void NoteCallStatus(const grpc::Status& status, RequestRecord* record);

}  // namespace moe::serving
