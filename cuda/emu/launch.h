// Kernel launch for the emulator: MOE_LAUNCH(grid, block, smem, stream, kernel)(args...) runs the
// grid before returning (every stream is synchronous). Arguments are converted to the kernel's
// parameter types once, on the host, and each emulated thread gets its own copy, as on a GPU.
#pragma once

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda/emu/grid.h"
#include "cuda/emu/runtime_api.h"

namespace moe::cuda::emu {

template <typename... Params>
class KernelCall {
 public:
  using Fn = void (*)(Params...);
  KernelCall(Fn fn, dim3 grid, dim3 block, size_t smem)
      : fn_(fn), grid_(grid), block_(block), smem_(smem) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel argument count");
    const std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    const Fn fn = fn_;
    const std::function<void()> body = [&params, fn] {
      std::tuple<std::decay_t<Params>...> mine = params;
      std::apply(fn, mine);
    };
    RunGrid(reinterpret_cast<const void*>(fn_), grid_, block_, smem_, body);
  }

 private:
  Fn fn_;
  dim3 grid_, block_;
  size_t smem_;
};

template <typename... Params>
KernelCall<Params...> Launch(void (*fn)(Params...), dim3 grid, dim3 block, size_t smem,
                             cudaStream_t /*stream*/) {
  return KernelCall<Params...>(fn, grid, block, smem);
}

}  // namespace moe::cuda::emu
