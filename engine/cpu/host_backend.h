// HostBackend: the memory half of the Backend contract for backends whose "device" is host
// memory (the CPU backends): buffers are aligned host allocations, copies are memcpy, every op
// completes before it returns (Synchronize has nothing to wait for).
#pragma once

#include <memory>

#include "core/aligned_buffer.h"
#include "engine/backend.h"

namespace moe::engine::cpu {

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes);
  void* data() const override { return storage_.data(); }
  size_t size() const override { return storage_.size(); }

 private:
  AlignedBuffer storage_;
};

class HostBackend : public Backend {
 public:
  bool HostAddressable() const override { return true; }
  StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override;
  Status CopyToDevice(void* dst, const void* src, size_t bytes, Stream stream) override;
  Status CopyToHost(void* dst, const void* src, size_t bytes, Stream stream) override;
  Status Fill(void* dst, uint8_t byte, size_t bytes, Stream stream) override;
  Status Synchronize(Stream stream) override { return OkStatus(); }
};

}  // namespace moe::engine::cpu
