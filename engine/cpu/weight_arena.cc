#include "engine/cpu/weight_arena.h"

#include <sys/mman.h>

#include <cstdint>

#include "core/check.h"

namespace moe::engine::cpu {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kChunk = size_t{64} << 20;
constexpr size_t kAlign = 64;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

WeightArena::~WeightArena() {
  for (const Chunk& c : chunks_) munmap(c.base, c.size);
}

void* WeightArena::Allocate(size_t bytes) {
  bytes = RoundUp(bytes == 0 ? 1 : bytes, kAlign);
  if (bytes > left_) {
    // A fresh chunk, 2 MiB aligned: map one huge page more and trim both ends.
    const size_t size = RoundUp(bytes > kChunk / 4 ? bytes : kChunk, kHugePage);
    void* raw =
        mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MOE_CHECK(raw != MAP_FAILED) << "out of memory mapping " << size << " bytes of weights";
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = RoundUp(start, kHugePage);
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + size + kHugePage;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
    void* base = reinterpret_cast<void*>(aligned);
    madvise(base, size, MADV_HUGEPAGE);  // advisory: harmless when unsupported
    chunks_.push_back({base, size});
    mapped_ += size;
    if (bytes > kChunk / 4) return base;  // a big piece keeps its chunk to itself
    cursor_ = static_cast<char*>(base);
    left_ = size;
  }
  void* piece = cursor_;
  cursor_ += bytes;
  left_ -= bytes;
  return piece;
}

}  // namespace moe::engine::cpu
