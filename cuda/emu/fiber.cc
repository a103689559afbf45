#include "cuda/emu/fiber.h"

#include <sys/mman.h>

#include <cstring>

#include "core/check.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64 (System V ABI)"
#endif

// moe_emu_switch(save, load): pushes the callee-saved registers, stores the stack pointer in
// *save, loads `load` and pops the same frame from there. MXCSR and the x87 control word are not
// switched: kernels never change rounding modes, and saving them doubled the cost of a switch.
extern "C" void moe_emu_switch(void** save, void* load);
asm(R"(
  .text
  .globl moe_emu_switch
  .type moe_emu_switch, @function
moe_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size moe_emu_switch, .-moe_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace moe::cuda::emu {

Fiber::~Fiber() {
  if (stack_ != nullptr) munmap(stack_, kStackBytes);
}

void Fiber::Start(void (*entry)()) {
  if (stack_ == nullptr) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    MOE_CHECK(p != MAP_FAILED) << "emulator: cannot map a fiber stack";
    stack_ = static_cast<unsigned char*>(p);
  }
  // Initial frame, from the new stack pointer up: six callee-saved registers, the return address
  // (entry) and one pad word. After the `ret`, rsp = top - 8, i.e. 16-byte aligned minus 8,
  // exactly as after a call instruction.
  uint64_t* top = reinterpret_cast<uint64_t*>(stack_ + kStackBytes);
  uint64_t* frame = top - 8;
  std::memset(frame, 0, 8 * sizeof(uint64_t));
  frame[6] = reinterpret_cast<uint64_t>(entry);
  sp_ = frame;
}

void Fiber::SwitchFrom(void** from) const { moe_emu_switch(from, sp_); }

void Fiber::SwitchTo(void* to) { moe_emu_switch(&sp_, to); }

}  // namespace moe::cuda::emu
