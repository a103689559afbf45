// WeightArena: memory for packed weights. Large chunks, 2 MiB aligned and advised for transparent
// huge pages, carved into 64-byte aligned pieces: a decode step streams hundreds of MiB of
// weights, and with 4 KiB pages every 4 KiB of it would also cost a TLB miss. Pieces live until
// the arena does (the backend owns it and outlives every model packed into it).
#pragma once

#include <cstddef>
#include <vector>

namespace moe::engine::cpu {

class WeightArena {
 public:
  WeightArena() = default;
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  // `bytes` of uninitialised memory, 64-byte aligned; aborts when out of memory.
  void* Allocate(size_t bytes);
  // Bytes mapped so far (pieces plus unused chunk tails).
  size_t mapped_bytes() const { return mapped_; }

 private:
  struct Chunk {
    void* base;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  char* cursor_ = nullptr;
  size_t left_ = 0;
  size_t mapped_ = 0;
};

}  // namespace moe::engine::cpu
