// Integer mixing for counter-based randomness and hashing: SplitMix64's finaliser, a bijection on
// 64-bit values with good avalanche. Deterministic across platforms and runs.
#pragma once

#include <cstdint>

namespace moe {

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The next value of a SplitMix64 stream whose state is `*state`.
inline uint64_t SplitMix64(uint64_t* state) {
  *state += 0x9e3779b97f4a7c15ULL;
  return Mix64(*state);
}

}  // namespace moe
