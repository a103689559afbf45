#include "engine/cpu/host_backend.h"

#include <cstring>

namespace moe::engine::cpu {

HostBuffer::HostBuffer(size_t bytes) : storage_(bytes) {}

StatusOr<std::unique_ptr<Buffer>> HostBackend::Allocate(size_t bytes) {
  return std::unique_ptr<Buffer>(new HostBuffer(bytes));
}

Status HostBackend::CopyToDevice(void* dst, const void* src, size_t bytes, Stream) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return OkStatus();
}

Status HostBackend::CopyToHost(void* dst, const void* src, size_t bytes, Stream) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return OkStatus();
}

Status HostBackend::Fill(void* dst, uint8_t byte, size_t bytes, Stream) {
  if (bytes > 0) std::memset(dst, byte, bytes);
  return OkStatus();
}

}  // namespace moe::engine::cpu
