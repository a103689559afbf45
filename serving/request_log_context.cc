#include "serving/request_log_context.h"

#include <algorithm>
#include <chrono>

#include "core/clock.h"

namespace moe::serving {

void NoteCallContext(const grpc::ServerContextBase& context, RequestRecord* record) {
  record->received_ns = WallNanos();
  record->peer = context.peer();
  // No deadline reads as a time point decades away.
  const auto left = context.deadline() - std::chrono::system_clock::now();
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count();
  record->deadline_ms = ms > int64_t{1} << 40 ? -1 : std::max<int64_t>(ms, 0);
}

void NoteCallStatus(const grpc::Status& status, RequestRecord* record) {
  record->grpc_code = static_cast<int>(status.error_code());
  record->error_msg = status.error_message();
}

}  // namespace moe::serving
