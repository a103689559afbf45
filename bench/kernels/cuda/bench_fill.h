// Device-side random fill for the kernel benchmarks (multi-GB weight sets are generated on the
// GPU instead of uploaded). Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bf16.h"

namespace moe::bench {

// data[i] = bf16(scale * u), u uniform in [-1, 1), a hash of (seed, i).
cudaError_t FillRandomBf16(Bf16* data, size_t count, float scale, uint64_t seed,
                           cudaStream_t stream);

}  // namespace moe::bench
