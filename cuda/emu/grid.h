// The CUDA emulator's execution model: a grid runs block by block on the calling OS thread; the
// threads of a block are fibers scheduled cooperatively (in a shuffled order each round, so
// missing barriers show up as wrong results). Barriers, warp collectives (shuffles, votes,
// ldmatrix, mma.sync) and cp.async are emulated with their PTX semantics, and misuse that is
// undefined on a GPU aborts with a message instead: a barrier not reached by every thread, a warp
// collective whose lanes disagree or have exited, a shuffle from a lane outside the mask, shared
// memory accessed through an address outside the block's dynamic allocation, more dynamic shared
// memory than the kernel opted in to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "cuda/emu/vector_types.h"

namespace moe::cuda::emu {

// The emulated device: what the runtime reports and what launches are checked against.
struct DeviceModel {
  int num_sms = 4;  // small, so persistent grids loop over many tiles
  int max_threads_per_sm = 2048;
  int max_threads_per_block = 1024;
  int64_t max_smem_per_sm = 228 * 1024;
  int64_t max_smem_per_block_optin = 227 * 1024;
  int64_t default_smem_per_block = 48 * 1024;
  int cc_major = 9, cc_minor = 0;
};
const DeviceModel& Device();
void SetDeviceModel(const DeviceModel& model);

// Seed of the shuffled fiber order (the same seed gives the same schedule).
void SetScheduleSeed(uint64_t seed);

// Runs `body` once per thread of every block of the grid. `kernel_id` identifies the kernel for
// its dynamic shared memory opt-in. Returns false (and sets the runtime's last error) for an
// invalid configuration, like a failed launch.
bool RunGrid(const void* kernel_id, dim3 grid, dim3 block, size_t smem_bytes,
             const std::function<void()>& body);

// Opt-in dynamic shared memory limit of one kernel (cudaFuncAttributeMaxDynamicSharedMemorySize).
void SetMaxDynamicSmem(const void* kernel_id, int64_t bytes);

// The calling emulated thread.
const dim3& ThreadIdx();
const dim3& BlockIdx();
const dim3& BlockDim();
const dim3& GridDim();

// Block barrier (bar.sync 0 over all threads that have not exited).
void SyncThreads();

// Warp collectives. Every lane named in `mask` must call the same collective with the same mask.
enum class ShuffleMode { kIndex, kUp, kDown, kXor };
uint64_t Shuffle(unsigned mask, uint64_t value, int lane_arg, ShuffleMode mode, int width);
unsigned Ballot(unsigned mask, bool predicate);
unsigned MatchAny(unsigned mask, uint64_t value);
void SyncWarp(unsigned mask);
// ldmatrix.sync.aligned.m8n8.x4.shared.b16: lanes 8i..8i+7 give the row addresses of matrix i.
void LdMatrixX4(uint32_t (&r)[4], uint32_t smem_addr);
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d += a * b.
void MmaBf16M16N8K16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

// cp.async: a copy is queued in the thread's open group and lands (zero-filled past src_bytes)
// either at its commit or when a wait_group retires its group (a coin per group): a read before
// the wait, or an overwrite of a stage another warp still reads, changes results.
void CpAsync(uint32_t smem_addr, const void* src, int bytes, int src_bytes);
void CpAsyncCommit();
void CpAsyncWait(int pending);

// Dynamic shared memory of the running block (poisoned with 0xff bytes at block start) and the
// shared-window address of a pointer into it.
unsigned char* DynamicSmem();
uint32_t SharedAddress(const void* p);

}  // namespace moe::cuda::emu
