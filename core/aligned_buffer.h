// An owning, 64-byte aligned, uninitialised byte buffer (move-only).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe {

class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t size() const { return size_; }
  // Fills every byte with zero.
  void Zero();

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moe
