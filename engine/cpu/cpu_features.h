// Runtime CPU dispatch for the optimized CPU backend: which instruction-set path the kernels
// take, and how many physical cores there are. Every path computes the same results contract
// (batch invariance, DESIGN.md §4); results may differ between paths within the per-op
// tolerances.
#pragma once

#include <string_view>

#include "core/status.h"

namespace moe::engine::cpu {

enum class CpuIsa {
  kAuto,        // a request only: the best path this CPU supports
  kScalar,      // portable C++ (the compiler's baseline vector ISA at most)
  kAvx2,        // AVX2 + FMA (+ F16C)
  kAvx512Bf16,  // AVX-512 F/BW/VL + AVX512_BF16 (vdpbf16ps): the fast path
};

// "auto", "scalar", "avx2", "avx512bf16".
std::string_view CpuIsaName(CpuIsa isa);
StatusOr<CpuIsa> ParseCpuIsa(std::string_view name);

// True when this CPU and OS can run `isa` (kAuto and kScalar: always).
bool CpuSupports(CpuIsa isa);
// The best supported path.
CpuIsa DetectCpuIsa();
// kAuto -> DetectCpuIsa(); an unsupported request is an error naming it.
StatusOr<CpuIsa> ResolveCpuIsa(CpuIsa requested);

// Physical cores this process may run on (SMT siblings counted once); at least 1.
int PhysicalCoreCount();

}  // namespace moe::engine::cpu
