// Micro-benchmarks of every op of the optimized CPU backend over the layer shapes of the `tiny`
// and `bench` presets and of Qwen3-30B-A3B (hidden 2048, 128 experts, top-8, moe_intermediate
// 768, 32 heads / 4 kv heads / head_dim 128).
//
// The machine's limits are measured once at start-up in the same process (a STREAM-like read
// bandwidth probe and a peak vdpbf16ps / FMA probe, both on the benchmark's thread count), and
// every benchmark reports its achieved GB/s and GFLOP/s as fractions of them (bw_frac,
// peak_frac). Weight-streaming benchmarks rotate over several copies / expert sets whose total
// exceeds the last-level cache, so "decode" figures are DRAM figures.
//
// Flags (besides Google Benchmark's): --threads=N (0 = physical cores), --isa=auto|avx512bf16|
// avx2|scalar, --presets=tiny,bench,qwen3.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/bf16.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/machine_probe.h"

namespace moe::engine::cpu {
namespace {

struct Preset {
  std::string name;
  int hidden, experts, top_k, inter, heads, kv_heads, head_dim, vocab;
};

const Preset kPresets[] = {
    {"tiny", 256, 8, 2, 256, 4, 2, 64, 512},
    {"bench", 1024, 64, 8, 512, 16, 4, 64, 32000},
    {"qwen3", 2048, 128, 8, 768, 32, 4, 128, 151936},
};

constexpr size_t kRotateBytes = 256u << 20;  // weight copies per benchmark: well beyond L3
constexpr int kRoutingSets = 16;

struct Globals {
  std::unique_ptr<CpuBackend> backend;
  int threads = 0;
  double read_bw = 0;  // bytes/s, `threads` threads
  double peak = 0;     // FLOP/s, `threads` threads
} g;

// ---- Sources ----------------------------------------------------------------------------------

struct Source {
  AlignedBuffer data;
  model::TensorEntry entry;
};

// A random BF16 matrix with values of magnitude ~1e-3..1e-1 (no denormals, no NaN).
std::unique_ptr<Source> RandomBf16(int64_t rows, int64_t cols, uint64_t seed) {
  auto s = std::make_unique<Source>();
  const size_t n = static_cast<size_t>(rows * cols);
  s->data = AlignedBuffer(n * 2);
  uint16_t* p = s->data.as<uint16_t>();
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint16_t exponent = static_cast<uint16_t>(0x75 + (x >> 60) % 8);  // 2^-10 .. 2^-3
    p[i] = static_cast<uint16_t>(((x >> 32) & 0x8000u) | (exponent << 7) | ((x >> 40) & 0x7f));
  }
  s->entry.name = "w";
  s->entry.dtype = DType::kBF16;
  s->entry.shape = {rows, cols};
  s->entry.data = s->data.data();
  s->entry.num_bytes = n * 2;
  return s;
}

struct Matrix {
  AlignedBuffer storage;
  TensorView view;
  Matrix(DType dtype, int64_t rows, int64_t cols)
      : storage(std::max<size_t>(static_cast<size_t>(rows * cols) * DTypeSize(dtype), 64)),
        view(TensorView::Contiguous(storage.data(), dtype, rows, cols)) {
    auto src = RandomBf16(rows, cols, rows * 31 + cols);
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = Bf16BitsToFloat(src->data.as<uint16_t>()[i]) * 100.f;
      if (dtype == DType::kF32) {
        storage.as<float>()[i] = v;
      } else {
        storage.as<uint16_t>()[i] = FloatToBf16Bits(v);
      }
    }
  }
};

// ---- Per-preset state (built on first use) ----------------------------------------------------

struct LinearSet {
  std::vector<std::unique_ptr<PackedLinear>> copies;
  size_t bytes = 0;  // one copy
  int64_t n = 0, k = 0;
};

LinearSet MakeLinears(int64_t n, int64_t k, bool rotate) {
  LinearSet set;
  set.n = n;
  set.k = k;
  auto src = RandomBf16(n, k, n * 7 + k);
  const size_t bytes = static_cast<size_t>(n * k) * 2;
  const int copies = rotate ? static_cast<int>(std::clamp<size_t>(kRotateBytes / bytes, 1, 64)) : 1;
  for (int c = 0; c < copies; ++c) {
    set.copies.push_back(std::move(g.backend->PackLinear(LinearSource{{&src->entry}, {}})).value());
  }
  set.bytes = set.copies[0]->packed_bytes;
  return set;
}

struct Routing {
  int tokens = 0;
  std::vector<int32_t> ids;      // [T, k]
  std::vector<float> weights;    // [T, k]
  std::vector<int32_t> offsets;  // [E + 1]
  std::vector<int32_t> row_to_token, slot_to_row;
  int distinct = 0;
};

struct PresetState {
  const Preset* p = nullptr;
  std::unique_ptr<PackedExperts> experts;
  size_t expert_gate_up_bytes = 0, expert_down_bytes = 0;
  std::map<std::string, LinearSet> linears;
  std::map<int, std::vector<Routing>> routings;  // by token count
};

std::map<std::string, std::unique_ptr<PresetState>> g_states;

PresetState& State(const Preset& p) {
  auto& slot = g_states[p.name];
  if (slot) return *slot;
  slot = std::make_unique<PresetState>();
  slot->p = &p;
  return *slot;
}

PackedExperts* Experts(PresetState& s) {
  if (s.experts) return s.experts.get();
  const Preset& p = *s.p;
  std::vector<std::unique_ptr<Source>> src;
  ExpertsSource es;
  for (int e = 0; e < p.experts; ++e) {
    src.push_back(RandomBf16(p.inter, p.hidden, 3 * e));
    es.gate.push_back(&src.back()->entry);
    src.push_back(RandomBf16(p.inter, p.hidden, 3 * e + 1));
    es.up.push_back(&src.back()->entry);
    src.push_back(RandomBf16(p.hidden, p.inter, 3 * e + 2));
    es.down.push_back(&src.back()->entry);
  }
  s.experts = std::move(g.backend->PackExperts(es)).value();
  s.expert_gate_up_bytes = static_cast<size_t>(2 * p.inter) * p.hidden * 2;
  s.expert_down_bytes = static_cast<size_t>(p.inter) * p.hidden * 2;
  return s.experts.get();
}

LinearSet& Linears(PresetState& s, const std::string& which) {
  auto it = s.linears.find(which);
  if (it != s.linears.end()) return it->second;
  const Preset& p = *s.p;
  LinearSet set;
  if (which == "qkv") set = MakeLinears((p.heads + 2 * p.kv_heads) * p.head_dim, p.hidden, true);
  if (which == "o") set = MakeLinears(p.hidden, p.heads * p.head_dim, true);
  if (which == "router") set = MakeLinears(p.experts, p.hidden, true);
  if (which == "lm_head") set = MakeLinears(p.vocab, p.hidden, false);
  return s.linears.emplace(which, std::move(set)).first->second;
}

// kRoutingSets random routings of `tokens` tokens (distinct uniform experts per token).
std::vector<Routing>& Routings(PresetState& s, int tokens) {
  auto it = s.routings.find(tokens);
  if (it != s.routings.end()) return it->second;
  const Preset& p = *s.p;
  std::mt19937 rng(tokens);
  std::vector<Routing> sets(kRoutingSets);
  for (Routing& r : sets) {
    r.tokens = tokens;
    r.ids.resize(tokens * p.top_k);
    r.weights.assign(tokens * p.top_k, 1.f / p.top_k);
    std::vector<int32_t> perm(p.experts);
    std::iota(perm.begin(), perm.end(), 0);
    std::set<int> used;
    for (int t = 0; t < tokens; ++t) {
      std::shuffle(perm.begin(), perm.end(), rng);
      std::sort(perm.begin(), perm.begin() + p.top_k);
      for (int j = 0; j < p.top_k; ++j) {
        r.ids[t * p.top_k + j] = perm[j];
        used.insert(perm[j]);
      }
    }
    r.distinct = static_cast<int>(used.size());
    r.offsets.assign(p.experts + 1, 0);
    r.row_to_token.assign(tokens * p.top_k, 0);
    r.slot_to_row.assign(tokens * p.top_k, 0);
    for (int32_t e : r.ids) ++r.offsets[e + 1];
    for (int e = 0; e < p.experts; ++e) r.offsets[e + 1] += r.offsets[e];
    std::vector<int32_t> cursor(r.offsets.begin(), r.offsets.end() - 1);
    for (int i = 0; i < tokens * p.top_k; ++i) {
      const int32_t row = cursor[r.ids[i]]++;
      r.row_to_token[row] = i / p.top_k;
      r.slot_to_row[i] = row;
    }
  }
  return s.routings.emplace(tokens, std::move(sets)).first->second;
}

void Reserve(const Preset& p, int max_tokens, int max_context, int max_seqs) {
  BackendLimits l;
  l.max_tokens = max_tokens;
  l.max_seqs = max_seqs;
  l.max_context = max_context;
  l.num_heads = p.heads;
  l.num_kv_heads = p.kv_heads;
  l.head_dim = p.head_dim;
  l.hidden = p.hidden;
  l.num_experts = p.experts;
  l.top_k = p.top_k;
  l.max_intermediate = p.inter;
  MOE_CHECK(g.backend->Reserve(l).ok());
}

void Report(benchmark::State& state, double bytes_total, double flops_total) {
  using benchmark::Counter;
  if (bytes_total > 0) {
    state.counters["GB/s"] = Counter(bytes_total / 1e9, Counter::kIsRate);
    state.counters["bw_frac"] = Counter(bytes_total / g.read_bw, Counter::kIsRate);
  }
  if (flops_total > 0) {
    state.counters["GFLOP/s"] = Counter(flops_total / 1e9, Counter::kIsRate);
    state.counters["peak_frac"] = Counter(flops_total / g.peak, Counter::kIsRate);
  }
}

// ---- Benchmarks -------------------------------------------------------------------------------

void BM_Linear(benchmark::State& state, const Preset* p, std::string which, int tokens) {
  PresetState& s = State(*p);
  LinearSet& set = Linears(s, which);
  Matrix x(DType::kBF16, tokens, set.k);
  Matrix out(which == "lm_head" ? DType::kF32 : DType::kBF16, tokens, set.n);
  size_t i = 0;
  double bytes = 0, flops = 0;
  for (auto _ : state) {
    const PackedLinear* w = set.copies[i++ % set.copies.size()].get();
    MOE_CHECK(g.backend->Linear(LinearArgs{x.view, w, out.view}, {}).ok());
    bytes += static_cast<double>(set.bytes);
    flops += 2.0 * tokens * set.n * set.k;
  }
  Report(state, bytes, flops);
}

// which: "gate_up" (GroupedGemmSwiGlu), "down" (GroupedGemm).
void BM_Grouped(benchmark::State& state, const Preset* p, std::string which, int tokens) {
  PresetState& s = State(*p);
  PackedExperts* experts = Experts(s);
  std::vector<Routing>& routings = Routings(s, tokens);
  const int rows = tokens * p->top_k;
  Matrix in(DType::kBF16, rows, which == "gate_up" ? p->hidden : p->inter);
  Matrix out(DType::kBF16, rows, which == "gate_up" ? p->inter : p->hidden);
  const size_t per_expert = which == "gate_up" ? s.expert_gate_up_bytes : s.expert_down_bytes;
  size_t i = 0;
  double bytes = 0, flops = 0;
  for (auto _ : state) {
    const Routing& r = routings[i++ % routings.size()];
    if (which == "gate_up") {
      MOE_CHECK(g.backend
                    ->GroupedGemmSwiGlu(
                        GroupedGemmSwiGluArgs{in.view, r.offsets.data(), experts, out.view}, {})
                    .ok());
    } else {
      MOE_CHECK(
          g.backend->GroupedGemm(GroupedGemmArgs{in.view, r.offsets.data(), experts, out.view}, {})
              .ok());
    }
    bytes += static_cast<double>(r.distinct) * per_expert;
    flops += 2.0 * rows * static_cast<double>(per_expert) / 2;
  }
  Report(state, bytes, flops);
  state.counters["experts"] = routings[0].distinct;
}

// The whole MoE block: router Linear, RouterTopK, Permute, both grouped GEMMs, combine.
void BM_MoeBlock(benchmark::State& state, const Preset* p, int tokens) {
  PresetState& s = State(*p);
  PackedExperts* experts = Experts(s);
  LinearSet& router = Linears(s, "router");
  std::vector<Routing>& routings = Routings(s, tokens);
  Reserve(*p, std::max(tokens, 64), 64, 64);
  const int rows = tokens * p->top_k;
  Matrix x(DType::kBF16, tokens, p->hidden), logits(DType::kBF16, tokens, p->experts),
      permuted(DType::kBF16, rows, p->hidden), h(DType::kBF16, rows, p->inter),
      y(DType::kBF16, rows, p->hidden), out(DType::kBF16, tokens, p->hidden);
  std::vector<int32_t> ids(rows), offsets(p->experts + 1), r2t(rows), s2r(rows);
  std::vector<float> weights(rows);
  size_t i = 0;
  double bytes = 0, flops = 0;
  for (auto _ : state) {
    // Random weights route every token to the same experts; use the prepared routings instead
    // so that successive steps touch different experts, as real ones do.
    const Routing& r = routings[i % routings.size()];
    const PackedLinear* rw = router.copies[i++ % router.copies.size()].get();
    MOE_CHECK(g.backend->Linear(LinearArgs{x.view, rw, logits.view}, {}).ok());
    RouterTopKArgs ra;
    ra.logits = logits.view;
    ra.num_tokens = tokens;
    ra.num_experts = p->experts;
    ra.top_k = p->top_k;
    ra.expert_ids = ids.data();
    ra.expert_weights = weights.data();
    MOE_CHECK(g.backend->RouterTopK(ra, {}).ok());
    MOE_CHECK(g.backend
                  ->Permute(PermuteArgs{x.view, r.ids.data(), tokens, p->top_k, p->experts,
                                        permuted.view, offsets.data(), r2t.data(), s2r.data()},
                            {})
                  .ok());
    MOE_CHECK(g.backend
                  ->GroupedGemmSwiGlu(
                      GroupedGemmSwiGluArgs{permuted.view, offsets.data(), experts, h.view}, {})
                  .ok());
    MOE_CHECK(
        g.backend->GroupedGemm(GroupedGemmArgs{h.view, offsets.data(), experts, y.view}, {}).ok());
    UnpermuteCombineArgs c;
    c.y_rows = y.view;
    c.slot_to_row = s2r.data();
    c.expert_weights = r.weights.data();
    c.num_tokens = tokens;
    c.top_k = p->top_k;
    c.out = out.view;
    MOE_CHECK(g.backend->UnpermuteCombine(c, {}).ok());
    bytes += static_cast<double>(r.distinct) * (s.expert_gate_up_bytes + s.expert_down_bytes) +
             router.bytes;
    flops += 2.0 * rows * (s.expert_gate_up_bytes + s.expert_down_bytes) / 2 +
             2.0 * tokens * router.n * router.k;
  }
  Report(state, bytes, flops);
}

// seqs sequences each with `queries` queries ending at position `context` - 1.
void BM_Attention(benchmark::State& state, const Preset* p, int seqs, int queries, int context) {
  const int bs = 16;
  const int blocks_per_seq = (context + bs - 1) / bs;
  Reserve(*p, std::max(seqs * queries, 64), context, std::max(seqs, 1));
  const int kv_width = p->kv_heads * p->head_dim;
  Matrix kc(DType::kBF16, seqs * blocks_per_seq * bs, kv_width),
      vc(DType::kBF16, seqs * blocks_per_seq * bs, kv_width);
  const int t = seqs * queries;
  Matrix q(DType::kBF16, t, p->heads * p->head_dim), out(DType::kBF16, t, p->heads * p->head_dim);
  std::vector<int32_t> tables(seqs * blocks_per_seq);
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), std::mt19937(1));
  std::vector<int32_t> query_start = {0}, positions;
  double flops_step = 0, bytes_step = 0;
  for (int s = 0; s < seqs; ++s) {
    for (int i = 0; i < queries; ++i) {
      const int pos = context - queries + i;
      positions.push_back(pos);
      flops_step += 4.0 * p->heads * p->head_dim * (pos + 1);
    }
    query_start.push_back(static_cast<int>(positions.size()));
    bytes_step += 2.0 * context * kv_width * 2;
  }
  AttentionArgs a;
  a.q = q.view;
  a.cache = KvCacheView{kc.view, vc.view, bs};
  a.query_start = query_start.data();
  a.positions = positions.data();
  a.block_tables = tables.data();
  a.max_blocks_per_seq = blocks_per_seq;
  a.num_seqs = seqs;
  a.num_tokens = t;
  a.num_heads = p->heads;
  a.num_kv_heads = p->kv_heads;
  a.head_dim = p->head_dim;
  a.scale = 1.f / std::sqrt(static_cast<float>(p->head_dim));
  a.out = out.view;
  double bytes = 0, flops = 0;
  for (auto _ : state) {
    MOE_CHECK(g.backend->Attention(a, {}).ok());
    bytes += bytes_step;
    flops += flops_step;
  }
  Report(state, bytes, flops);
}

// Row-wise ops on `tokens` rows: bytes = activations read + written.
void BM_RowOps(benchmark::State& state, const Preset* p, std::string which, int tokens) {
  Reserve(*p, std::max(tokens, 64), 4096, 64);
  const int h = p->hidden;
  Matrix x(DType::kBF16, tokens, h), add(DType::kBF16, tokens, h), out(DType::kBF16, tokens, h);
  std::vector<float> weight(std::max(h, p->heads * p->head_dim), 1.f);
  PresetState& s = State(*p);
  std::vector<Routing>& routings = Routings(s, tokens);
  const int rows = tokens * p->top_k;
  Matrix permuted(DType::kBF16, rows, h), y(DType::kBF16, rows, h),
      logits(DType::kBF16, tokens, p->experts);
  Matrix qkv(DType::kBF16, tokens, (p->heads + 2 * p->kv_heads) * p->head_dim);
  std::vector<int32_t> ids(rows), offsets(p->experts + 1), r2t(rows), s2r(rows), positions(tokens);
  std::iota(positions.begin(), positions.end(), 0);
  std::vector<float> weights(rows);
  double bytes_step = 0;
  size_t i = 0;
  for (auto _ : state) {
    const Routing& r = routings[i++ % routings.size()];
    if (which == "rmsnorm_add") {
      MOE_CHECK(
          g.backend->RmsNorm(RmsNormArgs{x.view, add.view, weight.data(), 1e-6f, out.view}, {})
              .ok());
      bytes_step = 5.0 * tokens * h * 2;
    } else if (which == "qk_norm_rope") {
      QkNormRopeArgs a;
      a.q = qkv.view.ColRange(0, p->heads * p->head_dim);
      a.k = qkv.view.ColRange(p->heads * p->head_dim, p->kv_heads * p->head_dim);
      a.positions = positions.data();
      a.num_tokens = tokens;
      a.num_heads = p->heads;
      a.num_kv_heads = p->kv_heads;
      a.head_dim = p->head_dim;
      a.norm = model::QkNormKind::kPerHead;
      a.q_norm_weight = weight.data();
      a.k_norm_weight = weight.data();
      a.rope_theta = 1e6f;
      MOE_CHECK(g.backend->QkNormRope(a, {}).ok());
      bytes_step = 2.0 * tokens * (p->heads + p->kv_heads) * p->head_dim * 2;
    } else if (which == "router_topk") {
      RouterTopKArgs a;
      a.logits = logits.view;
      a.num_tokens = tokens;
      a.num_experts = p->experts;
      a.top_k = p->top_k;
      a.expert_ids = ids.data();
      a.expert_weights = weights.data();
      MOE_CHECK(g.backend->RouterTopK(a, {}).ok());
      bytes_step = 2.0 * tokens * p->experts;
    } else if (which == "permute") {
      MOE_CHECK(g.backend
                    ->Permute(PermuteArgs{x.view, r.ids.data(), tokens, p->top_k, p->experts,
                                          permuted.view, offsets.data(), r2t.data(), s2r.data()},
                              {})
                    .ok());
      bytes_step = 2.0 * rows * h * 2;
    } else if (which == "combine") {
      UnpermuteCombineArgs c;
      c.y_rows = y.view;
      c.slot_to_row = r.slot_to_row.data();
      c.expert_weights = r.weights.data();
      c.num_tokens = tokens;
      c.top_k = p->top_k;
      c.out = out.view;
      MOE_CHECK(g.backend->UnpermuteCombine(c, {}).ok());
      bytes_step = (rows + tokens) * 2.0 * h;
    }
  }
  Report(state, bytes_step * state.iterations(), 0);
}

void RegisterAll(const std::vector<std::string>& presets) {
  for (const Preset& p : kPresets) {
    if (std::find(presets.begin(), presets.end(), p.name) == presets.end()) continue;
    const Preset* pp = &p;
    auto reg = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark(name.c_str(), fn)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(0.3);
    };
    for (const char* which : {"qkv", "o", "router"}) {
      for (int t : {1, 32, 512}) {
        reg("Linear/" + p.name + "/" + which + "/T" + std::to_string(t),
            [pp, which, t](benchmark::State& st) { BM_Linear(st, pp, which, t); });
      }
    }
    if (p.name != "qwen3") {
      for (int t : {1, 32}) {
        reg("Linear/" + p.name + "/lm_head/T" + std::to_string(t),
            [pp, t](benchmark::State& st) { BM_Linear(st, pp, "lm_head", t); });
      }
    }
    for (const char* which : {"gate_up", "down"}) {
      for (int t : {1, 32, 512}) {
        reg(std::string("Grouped/") + p.name + "/" + which + "/T" + std::to_string(t),
            [pp, which, t](benchmark::State& st) { BM_Grouped(st, pp, which, t); });
      }
    }
    for (int t : {1, 32, 512}) {
      reg("MoeBlock/" + p.name + "/T" + std::to_string(t),
          [pp, t](benchmark::State& st) { BM_MoeBlock(st, pp, t); });
    }
    reg("Attention/" + p.name + "/decode_s1_ctx1024",
        [pp](benchmark::State& st) { BM_Attention(st, pp, 1, 1, 1024); });
    reg("Attention/" + p.name + "/decode_s32_ctx512",
        [pp](benchmark::State& st) { BM_Attention(st, pp, 32, 1, 512); });
    reg("Attention/" + p.name + "/prefill_512",
        [pp](benchmark::State& st) { BM_Attention(st, pp, 1, 512, 512); });
    for (const char* which : {"rmsnorm_add", "qk_norm_rope", "router_topk", "permute", "combine"}) {
      for (int t : {1, 512}) {
        reg(std::string("RowOps/") + p.name + "/" + which + "/T" + std::to_string(t),
            [pp, which, t](benchmark::State& st) { BM_RowOps(st, pp, which, t); });
      }
    }
  }
}

}  // namespace
}  // namespace moe::engine::cpu

int main(int argc, char** argv) {
  using namespace moe::engine::cpu;
  int threads = 0;
  std::string isa_name = "auto";
  std::string presets = "tiny,bench,qwen3";
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      threads = std::stoi(arg.substr(10));
    } else if (arg.rfind("--isa=", 0) == 0) {
      isa_name = arg.substr(6);
    } else if (arg.rfind("--presets=", 0) == 0) {
      presets = arg.substr(10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto isa = ParseCpuIsa(isa_name);
  if (!isa.ok()) {
    std::fprintf(stderr, "%s\n", std::string(isa.status().message()).c_str());
    return 2;
  }
  auto backend = CpuBackend::Create(CpuBackendOptions{threads, *isa});
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", std::string(backend.status().message()).c_str());
    return 2;
  }
  g.backend = std::move(backend).value();
  g.threads = g.backend->num_threads();
  const double bw1 = MeasureReadBandwidth(size_t{1} << 30, 1, 8);
  const double bwn = MeasureReadBandwidth(size_t{1} << 30, g.threads, 8);
  const double peak1 = MeasurePeakFlops(g.backend->isa(), 1, 0.3);
  const double peakn = MeasurePeakFlops(g.backend->isa(), g.threads, 0.3);
  // The roofline is the best the machine did on either thread count (a probe slowed by another
  // process on this shared machine only ever reads low).
  g.read_bw = std::max(bw1, bwn);
  g.peak = std::max(peak1, peakn);
  std::printf(
      "machine: isa=%s threads=%d | read bandwidth %.1f GB/s (1 thread), %.1f GB/s (%d threads) "
      "| peak %s %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads)\n"
      "bw_frac and peak_frac below are fractions of the better of the two (%.1f GB/s, %.1f "
      "GFLOP/s).\n",
      std::string(CpuIsaName(g.backend->isa())).c_str(), g.threads, bw1 / 1e9, bwn / 1e9, g.threads,
      g.backend->isa() == CpuIsa::kAvx512Bf16 ? "vdpbf16ps" : "fp32 fma", peak1 / 1e9, peakn / 1e9,
      g.threads, g.read_bw / 1e9, g.peak / 1e9);
  std::vector<std::string> list;
  size_t at = 0;
  while (at <= presets.size()) {
    const size_t comma = std::min(presets.find(',', at), presets.size());
    list.push_back(presets.substr(at, comma - at));
    at = comma + 1;
  }
  RegisterAll(list);
  int bench_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&bench_argc, rest.data());
  benchmark::AddCustomContext("read_bw_GBps", std::to_string(g.read_bw / 1e9));
  benchmark::AddCustomContext("peak_GFLOPps", std::to_string(g.peak / 1e9));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
