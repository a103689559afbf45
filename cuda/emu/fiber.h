// Cooperative fibers for the CUDA emulator: one per emulated GPU thread, all on the calling OS
// thread. A fiber runs until it blocks (a barrier or warp collective) and switches back to the
// block scheduler; switching saves only callee-saved registers (x86-64 System V), so a switch
// costs a few nanoseconds and the emulation is deterministic for a given schedule.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::cuda::emu {

class Fiber {
 public:
  Fiber() = default;
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Prepares the fiber to run entry() from the top of its stack on the next SwitchTo. entry must
  // never return: it ends by switching away for the last time.
  void Start(void (*entry)());

  // Saves the current context in *from and resumes this fiber.
  void SwitchFrom(void** from) const;
  // Saves this fiber's context and resumes `to` (a context saved by SwitchFrom).
  void SwitchTo(void* to);

  void** context() { return &sp_; }

 private:
  static constexpr size_t kStackBytes = 256 * 1024;
  unsigned char* stack_ = nullptr;  // [kStackBytes], mmap'ed on first Start
  void* sp_ = nullptr;              // saved stack pointer while the fiber is suspended
};

}  // namespace moe::cuda::emu
