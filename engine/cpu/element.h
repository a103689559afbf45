// Element access for the CPU reference code: load any float dtype as float, store float rounded
// to the destination dtype (round to nearest even), and dispatch on a runtime DType.
#pragma once

#include "core/bf16.h"
#include "core/check.h"
#include "core/dtype.h"

namespace moe::engine::cpu {

inline float Load(const float* p) { return *p; }
inline float Load(const Bf16* p) { return ToFloat(*p); }
inline float Load(const Fp16* p) { return Fp16BitsToFloat(p->bits); }

inline void Store(float* p, float v) { *p = v; }
inline void Store(Bf16* p, float v) { *p = ToBf16(v); }
inline void Store(Fp16* p, float v) { p->bits = FloatToFp16Bits(v); }

// Rounds v as storing it to an element of type T would.
template <typename T>
inline float RoundAs(float v) {
  T tmp;
  Store(&tmp, v);
  return Load(&tmp);
}

// Calls fn(T{}) with T the element type of a float dtype (F32, BF16, F16).
template <typename Fn>
decltype(auto) DispatchFloat(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      return fn(float{});
    case DType::kBF16:
      return fn(Bf16{});
    case DType::kF16:
      return fn(Fp16{});
    default:
      break;
  }
  MOE_CHECK(false) << "not a float dtype: " << DTypeName(dtype);
  return fn(float{});
}

}  // namespace moe::engine::cpu
