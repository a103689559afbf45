#include "cuda/emu/grid.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/bf16.h"
#include "core/check.h"
#include "cuda/emu/fiber.h"
#include "cuda/emu/runtime_api.h"

namespace moe::cuda::emu {
namespace {

constexpr int kWarpSize = 32;
constexpr unsigned kAllLanes = 0xffffffffu;

enum class State { kRunnable, kBarrier, kWarp, kDone };

enum class Op { kNone, kShuffle, kBallot, kMatchAny, kSyncWarp, kLdMatrix, kMma };

const char* OpName(Op op) {
  switch (op) {
    case Op::kNone:
      return "none";
    case Op::kShuffle:
      return "shfl.sync";
    case Op::kBallot:
      return "vote.ballot.sync";
    case Op::kMatchAny:
      return "match.any.sync";
    case Op::kSyncWarp:
      return "bar.warp.sync";
    case Op::kLdMatrix:
      return "ldmatrix";
    case Op::kMma:
      return "mma.sync";
  }
  return "?";
}

struct CpAsyncCopy {
  unsigned char* dst;
  const unsigned char* src;
  int bytes;
  int src_bytes;
};

struct Lane {
  dim3 thread_idx;
  State state = State::kRunnable;
  Op op = Op::kNone;  // pending warp collective
  unsigned mask = 0;
  std::array<uint64_t, 10> in{};
  std::array<uint64_t, 4> out{};
  std::vector<CpAsyncCopy> open_group;
  std::vector<std::vector<CpAsyncCopy>> committed;  // oldest first
  Fiber fiber;
};

struct Warp {
  unsigned arrived = 0;  // lanes with a pending collective
};

// Everything about the block being run. One block runs at a time (the emulator is not
// reentrant: a kernel cannot launch another).
struct BlockRun {
  dim3 block_idx, block_dim, grid_dim;
  int num_threads = 0;
  int live = 0;        // threads that have not exited
  int at_barrier = 0;  // threads waiting in SyncThreads
  std::vector<std::unique_ptr<Lane>> lanes;
  std::vector<Warp> warps;
  int current = -1;
  void* scheduler_context = nullptr;
  const std::function<void()>* body = nullptr;
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  uint64_t rng = 1;  // xorshift64 state: schedule order, warp stalls, cp.async landing times
};

uint64_t NextRandom(BlockRun& r) {
  r.rng ^= r.rng << 13;
  r.rng ^= r.rng >> 7;
  r.rng ^= r.rng << 17;
  return r.rng;
}

struct Emulator {
  std::mutex mu;  // one grid at a time per process
  DeviceModel device;
  uint64_t seed = 0x5eed;
  std::unordered_map<const void*, int64_t> smem_optin;
  BlockRun run;
  std::vector<unsigned char> smem_arena;
};

Emulator& Emu() {
  static Emulator* emu = new Emulator();
  return *emu;
}

BlockRun& Run() { return Emu().run; }

Lane& Self() {
  BlockRun& r = Run();
  MOE_CHECK(r.current >= 0) << "emulator: device function called outside a kernel";
  return *r.lanes[r.current];
}

int SelfIndex() { return Run().current; }

// Switches from the running fiber back to the block scheduler.
void Yield() {
  BlockRun& r = Run();
  r.lanes[r.current]->fiber.SwitchTo(r.scheduler_context);
}

void Land(const CpAsyncCopy& c) {
  if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
  if (c.src_bytes < c.bytes) std::memset(c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
}

void RetireGroup(Lane& t) {
  for (const CpAsyncCopy& c : t.committed.front()) Land(c);
  t.committed.erase(t.committed.begin());
}

void ReleaseBarrierIfComplete() {
  BlockRun& r = Run();
  if (r.at_barrier == 0 || r.at_barrier < r.live) return;
  for (auto& l : r.lanes) {
    if (l->state == State::kBarrier) l->state = State::kRunnable;
  }
  r.at_barrier = 0;
}

void FiberMain() {
  BlockRun& r = Run();
  (*r.body)();
  Lane& t = *r.lanes[r.current];
  // Copies still in flight land before the block retires (nothing may read them any more).
  if (!t.open_group.empty()) {
    t.committed.push_back(std::move(t.open_group));
    t.open_group.clear();
  }
  while (!t.committed.empty()) RetireGroup(t);
  t.state = State::kDone;
  --r.live;
  ReleaseBarrierIfComplete();
  Yield();
  MOE_CHECK(false) << "emulator: a finished fiber was resumed";
}

std::string DescribeStall(const BlockRun& r) {
  std::string s;
  int shown = 0;
  for (int i = 0; i < r.num_threads && shown < 8; ++i) {
    const Lane& l = *r.lanes[i];
    if (l.state == State::kDone) continue;
    s += " thread " + std::to_string(i) +
         (l.state == State::kBarrier
              ? " at __syncthreads"
              : std::string(" in ") + OpName(l.op) + " mask " + std::to_string(l.mask));
    s += ";";
    ++shown;
  }
  return s;
}

void RunBlock(const dim3& block_idx) {
  BlockRun& r = Run();
  r.block_idx = block_idx;
  r.live = r.num_threads;
  r.at_barrier = 0;
  for (Warp& w : r.warps) w.arrived = 0;
  if (r.smem_bytes > 0) std::memset(r.smem, 0xff, r.smem_bytes);
  for (int i = 0; i < r.num_threads; ++i) {
    Lane& l = *r.lanes[i];
    l.state = State::kRunnable;
    l.op = Op::kNone;
    l.open_group.clear();
    l.committed.clear();
    l.fiber.Start(&FiberMain);
  }
  std::vector<int> order(r.num_threads);
  for (int i = 0; i < r.num_threads; ++i) order[i] = i;
  const uint64_t linear = block_idx.x + static_cast<uint64_t>(r.grid_dim.x) *
                                            (block_idx.y + r.grid_dim.y * block_idx.z);
  r.rng = Emu().seed ^ (linear * 0x9E3779B97F4A7C15ull) ^ 0x2545F4914F6CDD1Dull;
  if (r.rng == 0) r.rng = 1;
  auto next = [&r]() { return NextRandom(r); };
  std::vector<char> warp_waits(r.warps.size());
  while (r.live > 0) {
    for (int i = r.num_threads - 1; i > 0; --i) {  // Fisher-Yates with xorshift64
      std::swap(order[i], order[static_cast<int>(next() % static_cast<uint64_t>(i + 1))]);
    }
    // A random quarter of the warps sits the round out, so warps drift apart between barriers
    // (as on a GPU) instead of advancing in lockstep one collective per round.
    for (char& w : warp_waits) w = next() % 4 == 0;
    bool any_runnable = false;
    for (int i : order) {
      if (r.lanes[i]->state != State::kRunnable) continue;
      any_runnable = true;
      if (warp_waits[i / kWarpSize]) continue;
      r.current = i;
      r.lanes[i]->fiber.SwitchFrom(&r.scheduler_context);
      r.current = -1;
    }
    MOE_CHECK(any_runnable || r.live == 0)
        << "emulator: block (" << block_idx.x << "," << block_idx.y << "," << block_idx.z
        << ") deadlocked:" << DescribeStall(r);
  }
}

int LaneOf(int thread) { return thread % kWarpSize; }

// Registers this lane's collective; when the last lane of the mask arrives, `complete` fills
// every participant's `out` and the warp goes on. Returns this lane's result.
template <typename Complete>
const std::array<uint64_t, 4>& Collective(Op op, unsigned mask, Complete complete) {
  BlockRun& r = Run();
  const int self = SelfIndex();
  Lane& t = *r.lanes[self];
  const int lane = LaneOf(self);
  const int warp_base = self - lane;
  MOE_CHECK(mask & (1u << lane)) << "emulator: " << OpName(op) << " by lane " << lane
                                 << " whose own bit is not in mask " << mask;
  const int lanes_in_warp = std::min(kWarpSize, r.num_threads - warp_base);
  const unsigned existing = lanes_in_warp == kWarpSize ? kAllLanes : (1u << lanes_in_warp) - 1;
  MOE_CHECK((mask & ~existing) == 0)
      << "emulator: " << OpName(op) << " mask " << mask << " names lanes past the block's end";
  Warp& w = r.warps[self / kWarpSize];
  t.op = op;
  t.mask = mask;
  w.arrived |= 1u << lane;
  if ((w.arrived & mask) == mask) {
    std::array<Lane*, kWarpSize> lanes{};
    for (int i = 0; i < kWarpSize; ++i) {
      if (!(mask & (1u << i))) continue;
      Lane* l = r.lanes[warp_base + i].get();
      MOE_CHECK(l->op == op && l->mask == mask)
          << "emulator: warp collective mismatch: lane " << lane << " " << OpName(op) << " mask "
          << mask << ", lane " << i << " " << OpName(l->op) << " mask " << l->mask;
      lanes[i] = l;
    }
    complete(lanes);
    for (int i = 0; i < kWarpSize; ++i) {
      if (lanes[i] == nullptr) continue;
      lanes[i]->op = Op::kNone;
      if (lanes[i] != &t) lanes[i]->state = State::kRunnable;
    }
    w.arrived &= ~mask;
  } else {
    t.state = State::kWarp;
    Yield();
  }
  return t.out;
}

unsigned char* SharedPointer(uint32_t addr, int bytes, const char* what) {
  BlockRun& r = Run();
  MOE_CHECK(static_cast<size_t>(addr) + bytes <= r.smem_bytes)
      << "emulator: " << what << " at shared address " << addr << " (+" << bytes
      << " bytes) outside the block's " << r.smem_bytes << " bytes of dynamic shared memory";
  return r.smem + addr;
}

float Bf16Lo(uint32_t w) { return Bf16BitsToFloat(static_cast<uint16_t>(w & 0xffff)); }
float Bf16Hi(uint32_t w) { return Bf16BitsToFloat(static_cast<uint16_t>(w >> 16)); }

}  // namespace

const DeviceModel& Device() { return Emu().device; }
void SetDeviceModel(const DeviceModel& model) { Emu().device = model; }
void SetScheduleSeed(uint64_t seed) { Emu().seed = seed; }

void SetMaxDynamicSmem(const void* kernel_id, int64_t bytes) {
  Emu().smem_optin[kernel_id] = bytes;
}

bool RunGrid(const void* kernel_id, dim3 grid, dim3 block, size_t smem_bytes,
             const std::function<void()>& body) {
  Emulator& emu = Emu();
  std::lock_guard<std::mutex> lock(emu.mu);
  const int64_t threads = static_cast<int64_t>(block.x) * block.y * block.z;
  int64_t smem_limit = emu.device.default_smem_per_block;
  if (auto it = emu.smem_optin.find(kernel_id); it != emu.smem_optin.end()) {
    smem_limit = std::max(smem_limit, it->second);
  }
  if (threads <= 0 || threads > emu.device.max_threads_per_block || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    SetLastError(cudaErrorInvalidConfiguration);
    return false;
  }
  if (static_cast<int64_t>(smem_bytes) > smem_limit) {
    SetLastError(cudaErrorInvalidValue);
    return false;
  }
  BlockRun& r = emu.run;
  r.block_dim = block;
  r.grid_dim = grid;
  r.num_threads = static_cast<int>(threads);
  r.body = &body;
  r.smem_bytes = smem_bytes;
  if (emu.smem_arena.size() < smem_bytes + 128) emu.smem_arena.resize(smem_bytes + 128);
  r.smem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<uintptr_t>(emu.smem_arena.data()) + 127) & ~uintptr_t{127});
  while (static_cast<int>(r.lanes.size()) < r.num_threads) {
    r.lanes.push_back(std::make_unique<Lane>());
  }
  r.warps.assign((r.num_threads + kWarpSize - 1) / kWarpSize, Warp{});
  for (int i = 0; i < r.num_threads; ++i) {
    r.lanes[i]->thread_idx = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
  }
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) RunBlock(dim3(x, y, z));
    }
  }
  r.body = nullptr;
  return true;
}

const dim3& ThreadIdx() { return Self().thread_idx; }
const dim3& BlockIdx() { return Run().block_idx; }
const dim3& BlockDim() { return Run().block_dim; }
const dim3& GridDim() { return Run().grid_dim; }

void SyncThreads() {
  BlockRun& r = Run();
  Lane& t = Self();
  MOE_CHECK(t.op == Op::kNone) << "emulator: __syncthreads inside a warp collective";
  t.state = State::kBarrier;
  ++r.at_barrier;
  ReleaseBarrierIfComplete();
  if (t.state == State::kBarrier) Yield();
}

uint64_t Shuffle(unsigned mask, uint64_t value, int lane_arg, ShuffleMode mode, int width) {
  MOE_CHECK(width > 0 && width <= kWarpSize && (width & (width - 1)) == 0)
      << "emulator: shuffle width " << width << " is not a power of two <= 32";
  Self().in[0] = value;
  const auto& out = Collective(Op::kShuffle, mask, [&](std::array<Lane*, kWarpSize>& lanes) {
    for (int i = 0; i < kWarpSize; ++i) {
      if (lanes[i] == nullptr) continue;
      const int seg = i & ~(width - 1);
      const int pos = i - seg;
      int src = i;
      switch (mode) {
        case ShuffleMode::kIndex:
          src = seg + (lane_arg & (width - 1));
          break;
        case ShuffleMode::kUp:
          src = pos >= lane_arg ? i - lane_arg : i;
          break;
        case ShuffleMode::kDown:
          src = pos + lane_arg < width ? i + lane_arg : i;
          break;
        case ShuffleMode::kXor: {
          const int x = i ^ lane_arg;
          src = (x & ~(width - 1)) == seg ? x : i;
          break;
        }
      }
      MOE_CHECK(lanes[src] != nullptr)
          << "emulator: lane " << i << " shuffles from lane " << src << ", outside mask " << mask;
      lanes[i]->out[0] = lanes[src]->in[0];
    }
  });
  return out[0];
}

unsigned Ballot(unsigned mask, bool predicate) {
  Self().in[0] = predicate ? 1 : 0;
  return static_cast<unsigned>(
      Collective(Op::kBallot, mask, [&](std::array<Lane*, kWarpSize>& lanes) {
        unsigned bits = 0;
        for (int i = 0; i < kWarpSize; ++i) {
          if (lanes[i] != nullptr && lanes[i]->in[0] != 0) bits |= 1u << i;
        }
        for (Lane* l : lanes) {
          if (l != nullptr) l->out[0] = bits;
        }
      })[0]);
}

unsigned MatchAny(unsigned mask, uint64_t value) {
  Self().in[0] = value;
  return static_cast<unsigned>(
      Collective(Op::kMatchAny, mask, [&](std::array<Lane*, kWarpSize>& lanes) {
        for (int i = 0; i < kWarpSize; ++i) {
          if (lanes[i] == nullptr) continue;
          unsigned same = 0;
          for (int j = 0; j < kWarpSize; ++j) {
            if (lanes[j] != nullptr && lanes[j]->in[0] == lanes[i]->in[0]) same |= 1u << j;
          }
          lanes[i]->out[0] = same;
        }
      })[0]);
}

void SyncWarp(unsigned mask) {
  Collective(Op::kSyncWarp, mask, [](std::array<Lane*, kWarpSize>&) {});
}

void LdMatrixX4(uint32_t (&r)[4], uint32_t smem_addr) {
  Self().in[0] = smem_addr;
  const auto& out = Collective(Op::kLdMatrix, kAllLanes, [&](std::array<Lane*, kWarpSize>& lanes) {
    for (int i = 0; i < kWarpSize; ++i) {
      for (int m = 0; m < 4; ++m) {
        // Matrix m, row i / 4 (address from lane 8m + i / 4), 32-bit column i % 4.
        const uint32_t row_addr = static_cast<uint32_t>(lanes[8 * m + i / 4]->in[0]);
        MOE_CHECK(row_addr % 16 == 0)
            << "emulator: ldmatrix row address " << row_addr << " is not 16-byte aligned";
        uint32_t word;
        std::memcpy(&word, SharedPointer(row_addr + 4 * (i % 4), 4, "ldmatrix"), 4);
        lanes[i]->out[m] = word;
      }
    }
  });
  for (int m = 0; m < 4; ++m) r[m] = static_cast<uint32_t>(out[m]);
}

void MmaBf16M16N8K16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Lane& self = Self();
  for (int i = 0; i < 4; ++i) self.in[i] = a[i];
  self.in[4] = b0;
  self.in[5] = b1;
  for (int i = 0; i < 4; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &d[i], 4);
    self.in[6 + i] = bits;
  }
  const auto& out = Collective(Op::kMma, kAllLanes, [&](std::array<Lane*, kWarpSize>& lanes) {
    // Unpack the fragments (PTX ISA, "mma.m16n8k16" bf16 layouts); g = lane / 4, t = lane % 4.
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < kWarpSize; ++l) {
      const int g = l / 4, t = l % 4;
      const auto& in = lanes[l]->in;
      const int rows[4] = {g, g + 8, g, g + 8};
      const int cols[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
      for (int i = 0; i < 4; ++i) {
        A[rows[i]][cols[i]] = Bf16Lo(static_cast<uint32_t>(in[i]));
        A[rows[i]][cols[i] + 1] = Bf16Hi(static_cast<uint32_t>(in[i]));
      }
      for (int i = 0; i < 2; ++i) {
        const uint32_t w = static_cast<uint32_t>(in[4 + i]);
        B[2 * t + 8 * i][g] = Bf16Lo(w);
        B[2 * t + 8 * i + 1][g] = Bf16Hi(w);
      }
      for (int i = 0; i < 4; ++i) {
        float c;
        const uint32_t bits = static_cast<uint32_t>(in[6 + i]);
        std::memcpy(&c, &bits, 4);
        C[g + 8 * (i / 2)][2 * t + (i % 2)] = c;
      }
    }
    // Each element accumulates over k in ascending order (vectorised across columns only).
    for (int row = 0; row < 16; ++row) {
      for (int k = 0; k < 16; ++k) {
        for (int col = 0; col < 8; ++col) C[row][col] += A[row][k] * B[k][col];
      }
    }
    for (int l = 0; l < kWarpSize; ++l) {
      const int g = l / 4, t = l % 4;
      for (int i = 0; i < 4; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &C[g + 8 * (i / 2)][2 * t + (i % 2)], 4);
        lanes[l]->out[i] = bits;
      }
    }
  });
  for (int i = 0; i < 4; ++i) {
    const uint32_t bits = static_cast<uint32_t>(out[i]);
    std::memcpy(&d[i], &bits, 4);
  }
}

void CpAsync(uint32_t smem_addr, const void* src, int bytes, int src_bytes) {
  MOE_CHECK(bytes == 4 || bytes == 8 || bytes == 16)
      << "emulator: cp.async of " << bytes << " bytes";
  MOE_CHECK(smem_addr % bytes == 0)
      << "emulator: cp.async destination " << smem_addr << " not aligned to " << bytes;
  MOE_CHECK(reinterpret_cast<uintptr_t>(src) % bytes == 0 || src_bytes == 0)
      << "emulator: cp.async source not aligned to " << bytes;
  MOE_CHECK(src_bytes >= 0 && src_bytes <= bytes) << "emulator: cp.async src-size " << src_bytes;
  Self().open_group.push_back({SharedPointer(smem_addr, bytes, "cp.async"),
                               static_cast<const unsigned char*>(src), bytes, src_bytes});
}

void CpAsyncCommit() {
  Lane& t = Self();
  t.committed.push_back(std::move(t.open_group));
  t.open_group.clear();
  // A group may land any time between its commit and the wait that retires it: half of them land
  // at once (exposing a stage overwritten while another warp still reads it), the others at the
  // wait (exposing a read before the wait).
  if (NextRandom(Run()) % 2 == 0) {
    std::vector<CpAsyncCopy> group = std::move(t.committed.back());
    t.committed.back().clear();
    for (const CpAsyncCopy& c : group) Land(c);
  }
}

void CpAsyncWait(int pending) {
  Lane& t = Self();
  while (static_cast<int>(t.committed.size()) > pending) RetireGroup(t);
}

unsigned char* DynamicSmem() { return Run().smem; }

uint32_t SharedAddress(const void* p) {
  const BlockRun& r = Run();
  const auto* c = static_cast<const unsigned char*>(p);
  MOE_CHECK(c >= r.smem && c <= r.smem + r.smem_bytes)
      << "emulator: shared-window address of a pointer outside dynamic shared memory";
  return static_cast<uint32_t>(c - r.smem);
}

}  // namespace moe::cuda::emu
