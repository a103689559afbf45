// CudaBackend's dense ops against engine::cpu::ReferenceBackend over a shape table (0, 1, 7, 64,
// 512 tokens; the bench preset's and Qwen3-30B-A3B's layer shapes; odd sizes), F32 and BF16
// activations, default and --deterministic modes. Also the batch invariance the deterministic
// mode promises at op level, and the error paths. Label `gpu`; skips without a device (except the
// no-device test, which runs only without one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "tests/cuda/backend/backend_test_util.h"

namespace moe::cuda::testing {
namespace {

using engine::Stream;

// On the CPU emulator (cuda/emu) the 512-token cases are left to GPU runs: they only add rows.
#if defined(MOE_CUDA_EMULATION)
constexpr int kTokenCounts[] = {0, 1, 7, 64};
#else
constexpr int kTokenCounts[] = {0, 1, 7, 64, 512};
#endif
constexpr DType kDtypes[] = {DType::kF32, DType::kBF16};

// Elementwise ops: f32 differs by expf / sum order only; bf16 by one rounding step.
Tolerance RowTolerance(DType d) {
  return d == DType::kF32 ? Tolerance{2e-5, 1e-6} : Tolerance{1.0 / 128, 1.0 / 512};
}
// Row ops rounded twice in bf16 (rmsnorm: normalised, then times the weight): a different
// rounding of the f32 row sum can flip the first rounding, and the second can carry it to 2 ulps.
Tolerance TwoRoundingsTolerance(DType d) {
  return d == DType::kF32 ? Tolerance{2e-5, 1e-6} : Tolerance{1.0 / 64, 1.0 / 512};
}
// QkNormRope: a flipped rounding of a normed element (1 ulp of values up to max |x|) goes
// through the rotation's cancellation x1 c - x2 s, so the bound is absolute in max |x|.
Tolerance NormRopeTolerance(DType d) {
  return d == DType::kF32 ? Tolerance{2e-5, 1e-6} : Tolerance{1.0 / 64, 1.0 / 128};
}
// Reductions over k (GEMM, attention): f32 sums in another order.
Tolerance ReductionTolerance(DType d) {
  return d == DType::kF32 ? Tolerance{1e-4, 2e-5} : Tolerance{1.0 / 64, 1.0 / 256};
}

TEST(CudaBackendCreate, WithoutDeviceIsUnavailable) {
  if (HaveCudaDevice()) GTEST_SKIP() << "a CUDA device is present: the no-device path is moot";
  EXPECT_EQ(CudaDeviceCount(), 0);
  auto backend = CudaBackend::Create(CudaBackendOptions{});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kUnavailable);
}

TEST(CudaBackendCreate, ReportsDeviceAndRejectsBadOptions) {
  MOE_SKIP_IF_NO_GPU();
  auto backend = CudaBackend::Create(CudaBackendOptions{});
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  EXPECT_EQ((*backend)->Name(), "cuda");
  EXPECT_FALSE((*backend)->HostAddressable());
  EXPECT_FALSE((*backend)->device_description().empty());
  std::printf("device: %s\n", (*backend)->device_description().c_str());
  CudaBackendOptions bad;
  bad.device = CudaDeviceCount();
  EXPECT_EQ(CudaBackend::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseGroupedGemmKernel("cutlass").ok());
  EXPECT_EQ(*ParseGroupedGemmKernel("custom"), GroupedGemmKernel::kCustom);
}

TEST(CudaBackendErrors, OpsReportStatusNotCrash) {
  MOE_SKIP_IF_NO_GPU();
  auto created = CudaBackend::Create(CudaBackendOptions{});
  ASSERT_TRUE(created.ok());
  CudaBackend& gpu = **created;
  auto buffer = std::move(gpu.Allocate(1024)).value();
  const TensorView x = TensorView::Contiguous(buffer->data(), DType::kBF16, 4, 64);
  std::vector<float> weight(64, 1.f);
  auto w = std::move(gpu.Allocate(256)).value();
  ASSERT_TRUE(gpu.CopyToDevice(w->data(), weight.data(), 256, Stream{}).ok());
  // Before Reserve().
  EXPECT_EQ(gpu.RmsNorm({x, {}, w->as<float>(), 1e-6f, x}, Stream{}).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(gpu.Reserve(OpTestLimits()).ok());
  EXPECT_TRUE(gpu.RmsNorm({x, {}, w->as<float>(), 1e-6f, x}, Stream{}).ok());
  // Unknown stream, mismatched shapes, unsupported dtype.
  EXPECT_EQ(gpu.RmsNorm({x, {}, w->as<float>(), 1e-6f, x}, Stream{3}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu.RmsNorm({x, {}, w->as<float>(), 1e-6f, x.ColRange(0, 32)}, Stream{}).code(),
            absl::StatusCode::kInvalidArgument);
  TensorView ints = x;
  ints.dtype = DType::kI32;
  const Status bad_dtype = gpu.RmsNorm({ints, {}, w->as<float>(), 1e-6f, ints}, Stream{});
  EXPECT_EQ(bad_dtype.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad_dtype.message()).find("RmsNorm"), std::string::npos);
  EXPECT_TRUE(gpu.Synchronize(Stream{}).ok());
}

TEST(CudaBackendOps, EmbedAndGatherRowsAreExact) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  struct Shape {
    int vocab, hidden;
  };
  for (const Shape shape :
       {Shape{512, 256}, Shape{32000, 1024}, Shape{1000, 2048}, Shape{97, 100}}) {
    FakeTensor table("embed", {shape.vocab, shape.hidden}, 1.f, shape.vocab);
    auto ref_table = std::move(pair.ref->PackEmbedding(table.entry)).value();
    auto gpu_table = std::move(pair.gpu->PackEmbedding(table.entry)).value();
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        SCOPED_TRACE("V" + std::to_string(shape.vocab) + " H" + std::to_string(shape.hidden) + " " +
                     DTypeLabel(dtype) + " T" + std::to_string(t));
        std::mt19937 rng(t + shape.hidden);
        std::vector<int32_t> ids(t);
        for (int32_t& id : ids) id = static_cast<int32_t>(rng() % shape.vocab);
        MirroredArray<int32_t> d_ids(pair, t);
        d_ids.Set(ids);
        MirroredMatrix out(pair, dtype, t, shape.hidden);
        ASSERT_TRUE(pair.ref->Embed({d_ids.ref(), t, ref_table.get(), out.ref()}, Stream{}).ok());
        ASSERT_TRUE(pair.gpu->Embed({d_ids.gpu(), t, gpu_table.get(), out.gpu()}, Stream{}).ok());
        EXPECT_TRUE(BitEqual(out.ReadGpu(), out.ReadRef(), "embed"));

        // Gather every other row (and the last), out of a strided view.
        MirroredMatrix wide(pair, dtype, t, shape.hidden + 8);
        wide.Randomize(2.f, t + 1);
        const TensorView x_ref = wide.ref().ColRange(4, shape.hidden);
        const TensorView x_gpu = wide.gpu().ColRange(4, shape.hidden);
        std::vector<int32_t> rows;
        for (int i = t - 1; i >= 0; i -= 2) rows.push_back(i);
        const int n = static_cast<int>(rows.size());
        MirroredArray<int32_t> d_rows(pair, n);
        d_rows.Set(rows);
        const DType out_dtype = dtype == DType::kF32 ? DType::kBF16 : DType::kF32;
        MirroredMatrix gathered(pair, out_dtype, n, shape.hidden);
        ASSERT_TRUE(pair.ref->GatherRows({x_ref, d_rows.ref(), n, gathered.ref()}, Stream{}).ok());
        ASSERT_TRUE(pair.gpu->GatherRows({x_gpu, d_rows.gpu(), n, gathered.gpu()}, Stream{}).ok());
        EXPECT_TRUE(BitEqual(gathered.ReadGpu(), gathered.ReadRef(), "gather"));
      }
    }
  }
}

TEST(CudaBackendOps, RmsNormWithAndWithoutResidual) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (int hidden : {256, 1024, 2048, 4096, 100}) {
    FakeTensor weight_t("norm", {hidden}, 1.f, hidden);
    auto ref_w = std::move(pair.ref->UploadF32(weight_t.entry)).value();
    auto gpu_w = std::move(pair.gpu->UploadF32(weight_t.entry)).value();
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        for (bool add : {false, true}) {
          SCOPED_TRACE("H" + std::to_string(hidden) + " " + DTypeLabel(dtype) + " T" +
                       std::to_string(t) + (add ? " +residual" : ""));
          MirroredMatrix x(pair, dtype, t, hidden), residual(pair, dtype, t, hidden),
              out(pair, dtype, t, hidden);
          x.Randomize(3.f, 10 + t);
          residual.Randomize(1.f, 20 + t);
          const TensorView add_ref = add ? residual.ref() : TensorView{};
          const TensorView add_gpu = add ? residual.gpu() : TensorView{};
          ASSERT_TRUE(
              pair.ref->RmsNorm({x.ref(), add_ref, ref_w->as<float>(), 1e-6f, out.ref()}, Stream{})
                  .ok());
          ASSERT_TRUE(
              pair.gpu->RmsNorm({x.gpu(), add_gpu, gpu_w->as<float>(), 1e-6f, out.gpu()}, Stream{})
                  .ok());
          EXPECT_TRUE(BitEqual(x.ReadGpu(), x.ReadRef(), "residual stream x"));
          EXPECT_TRUE(
              Near(out.ReadGpu(), out.ReadRef(), TwoRoundingsTolerance(dtype), "rmsnorm out"));
        }
      }
    }
  }
}

struct LinearShape {
  const char* name;
  int in, out;
  bool bias;
  DType out_dtype;  // kBF16 = the activation dtype
};

// Bench preset and Qwen3-30B-A3B projections, router / lm_head with F32 logits, odd sizes.
const LinearShape kLinearShapes[] = {
    {"bench-qkv", 1024, 1536, false, DType::kBF16},
    {"bench-o", 1024, 1024, false, DType::kBF16},
    {"bench-router", 1024, 64, false, DType::kBF16},
    {"qwen3-qkv", 2048, 5120, false, DType::kBF16},
    {"qwen3-o", 4096, 2048, false, DType::kBF16},
    {"qwen3-router", 2048, 128, false, DType::kF32},
    {"tiny-lm-head", 256, 512, false, DType::kF32},
    {"qwen2-qkv-bias", 1024, 1536, true, DType::kBF16},
    {"odd-bias-f32", 100, 37, true, DType::kF32},
    {"odd", 72, 13, false, DType::kBF16},
};

void CheckLinear(const CudaBackendOptions& options) {
  BackendPair pair = BackendPair::Make(options);
  for (const LinearShape& shape : kLinearShapes) {
    FakeTensor w("w", {shape.out, shape.in}, 1.f / std::sqrt(static_cast<float>(shape.in)),
                 shape.in * 7 + shape.out);
    FakeTensor b("b", {shape.out}, 0.5f, shape.out);
    engine::LinearSource source{{&w.entry}, {}};
    if (shape.bias) source.biases = {&b.entry};
    auto ref_w = std::move(pair.ref->PackLinear(source)).value();
    auto gpu_w = std::move(pair.gpu->PackLinear(source)).value();
    for (DType dtype : kDtypes) {
      const DType out_dtype = shape.out_dtype == DType::kF32 ? DType::kF32 : dtype;
      for (int t : kTokenCounts) {
        SCOPED_TRACE(std::string(shape.name) + " " + DTypeLabel(dtype) + " T" + std::to_string(t) +
                     (options.deterministic ? " deterministic" : ""));
        // x is a column range of a wider buffer (strided, like the model's views).
        MirroredMatrix wide(pair, dtype, t, shape.in + 16);
        wide.Randomize(1.f, t * 3 + shape.in);
        MirroredMatrix out(pair, out_dtype, t, shape.out);
        ASSERT_TRUE(
            pair.ref->Linear({wide.ref().ColRange(8, shape.in), ref_w.get(), out.ref()}, Stream{})
                .ok());
        const Status s =
            pair.gpu->Linear({wide.gpu().ColRange(8, shape.in), gpu_w.get(), out.gpu()}, Stream{});
        ASSERT_TRUE(s.ok()) << s.message();
        EXPECT_TRUE(Near(out.ReadGpu(), out.ReadRef(), ReductionTolerance(out_dtype), "linear"));
      }
    }
  }
}

TEST(CudaBackendOps, LinearMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  CheckLinear(CudaBackendOptions{});
}

TEST(CudaBackendOps, DeterministicLinearMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  CudaBackendOptions options;
  options.deterministic = true;
  CheckLinear(options);
}

// Deterministic mode: a row's output bits do not depend on how many rows share the call.
TEST(CudaBackendOps, DeterministicLinearRowsAreBatchInvariant) {
  MOE_SKIP_IF_NO_GPU();
  CudaBackendOptions options;
  options.deterministic = true;
  BackendPair pair = BackendPair::Make(options);
  FakeTensor w("w", {1536, 1024}, 1.f / 32, 5);
  auto gpu_w = std::move(pair.gpu->PackLinear({{&w.entry}, {}})).value();
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(DTypeLabel(dtype));
    MirroredMatrix x(pair, dtype, 512, 1024);
    x.Randomize(1.f, 77);
    MirroredMatrix all(pair, dtype, 512, 1536);
    ASSERT_TRUE(pair.gpu->Linear({x.gpu(), gpu_w.get(), all.gpu()}, Stream{}).ok());
    const std::vector<float> batched = all.ReadGpu();
    for (int rows : {1, 7, 64}) {
      for (int first : {0, 100, 512 - rows}) {
        MirroredMatrix part(pair, dtype, rows, 1536);
        ASSERT_TRUE(
            pair.gpu->Linear({x.gpu().RowRange(first, rows), gpu_w.get(), part.gpu()}, Stream{})
                .ok());
        const std::vector<float> want(batched.begin() + first * 1536,
                                      batched.begin() + (first + rows) * 1536);
        EXPECT_TRUE(BitEqual(part.ReadGpu(), want,
                             "rows " + std::to_string(first) + "+" + std::to_string(rows)));
      }
    }
  }
}

struct RopeShape {
  const char* name;
  int heads, kv_heads, head_dim;
  model::QkNormKind norm;
  float theta;
};

const RopeShape kRopeShapes[] = {
    {"qwen3-30b", 32, 4, 128, model::QkNormKind::kPerHead, 1e6f},
    {"bench", 16, 4, 64, model::QkNormKind::kPerHead, 1e6f},
    {"olmoe-full", 16, 16, 64, model::QkNormKind::kFull, 1e4f},
    {"mixtral-none", 32, 8, 128, model::QkNormKind::kNone, 1e6f},
    {"tiny", 4, 2, 64, model::QkNormKind::kPerHead, 1e6f},
    {"hd256", 8, 2, 256, model::QkNormKind::kPerHead, 1e4f},
};

TEST(CudaBackendOps, QkNormRopeMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (const RopeShape& shape : kRopeShapes) {
    const int q_width = shape.heads * shape.head_dim;
    const int k_width = shape.kv_heads * shape.head_dim;
    const bool full = shape.norm == model::QkNormKind::kFull;
    FakeTensor qw("q_norm", {full ? q_width : shape.head_dim}, 1.f, 3);
    FakeTensor kw("k_norm", {full ? k_width : shape.head_dim}, 1.f, 4);
    auto ref_qw = std::move(pair.ref->UploadF32(qw.entry)).value();
    auto gpu_qw = std::move(pair.gpu->UploadF32(qw.entry)).value();
    auto ref_kw = std::move(pair.ref->UploadF32(kw.entry)).value();
    auto gpu_kw = std::move(pair.gpu->UploadF32(kw.entry)).value();
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        SCOPED_TRACE(std::string(shape.name) + " " + DTypeLabel(dtype) + " T" + std::to_string(t));
        // q and k as column ranges of one fused qkv buffer, as the model passes them.
        MirroredMatrix qkv(pair, dtype, t, q_width + 2 * k_width);
        qkv.Randomize(2.f, t + shape.head_dim);
        std::mt19937 rng(t);
        std::vector<int32_t> positions(t);
        for (int32_t& p : positions) p = static_cast<int32_t>(rng() % 40000);
        MirroredArray<int32_t> d_pos(pair, t);
        d_pos.Set(positions);
        auto args = [&](const TensorView& m, int32_t* pos, const float* qn, const float* kn) {
          engine::QkNormRopeArgs a;
          a.q = m.ColRange(0, q_width);
          a.k = m.ColRange(q_width, k_width);
          a.positions = pos;
          a.num_tokens = t;
          a.num_heads = shape.heads;
          a.num_kv_heads = shape.kv_heads;
          a.head_dim = shape.head_dim;
          a.norm = shape.norm;
          a.q_norm_weight = qn;
          a.k_norm_weight = kn;
          a.rope_theta = shape.theta;
          return a;
        };
        ASSERT_TRUE(
            pair.ref
                ->QkNormRope(args(qkv.ref(), d_pos.ref(), ref_qw->as<float>(), ref_kw->as<float>()),
                             Stream{})
                .ok());
        ASSERT_TRUE(
            pair.gpu
                ->QkNormRope(args(qkv.gpu(), d_pos.gpu(), gpu_qw->as<float>(), gpu_kw->as<float>()),
                             Stream{})
                .ok());
        // v (the last columns) is untouched: compared too.
        EXPECT_TRUE(Near(qkv.ReadGpu(), qkv.ReadRef(), NormRopeTolerance(dtype), "qkv"));
      }
    }
  }
}

TEST(CudaBackendOps, KvWriteIsExactAndSkipsNegativeSlots) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  constexpr int kBlocks = 64, kBlockSize = 16;
  for (int width : {2 * 64, 4 * 128, 8 * 128, 2 * 36}) {
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        SCOPED_TRACE("width " + std::to_string(width) + " " + DTypeLabel(dtype) + " T" +
                     std::to_string(t));
        MirroredMatrix qkv(pair, dtype, t, 3 * width);
        qkv.Randomize(1.f, t + width);
        MirroredMatrix k_cache(pair, dtype, kBlocks * kBlockSize, width);
        MirroredMatrix v_cache(pair, dtype, kBlocks * kBlockSize, width);
        k_cache.Randomize(1.f, 1);
        v_cache.Randomize(1.f, 2);
        std::vector<int64_t> slots(kBlocks * kBlockSize);
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), std::mt19937(t));
        slots.resize(t);
        for (int i = 3; i < t; i += 5) slots[i] = -1;
        MirroredArray<int64_t> d_slots(pair, t);
        d_slots.Set(slots);
        auto args = [&](const TensorView& m, int64_t* s, const TensorView& kc,
                        const TensorView& vc) {
          return engine::KvWriteArgs{m.ColRange(width, width), m.ColRange(2 * width, width), s, t,
                                     engine::KvCacheView{kc, vc, kBlockSize}};
        };
        ASSERT_TRUE(
            pair.ref
                ->KvWrite(args(qkv.ref(), d_slots.ref(), k_cache.ref(), v_cache.ref()), Stream{})
                .ok());
        ASSERT_TRUE(
            pair.gpu
                ->KvWrite(args(qkv.gpu(), d_slots.gpu(), k_cache.gpu(), v_cache.gpu()), Stream{})
                .ok());
        EXPECT_TRUE(BitEqual(k_cache.ReadGpu(), k_cache.ReadRef(), "k cache"));
        EXPECT_TRUE(BitEqual(v_cache.ReadGpu(), v_cache.ReadRef(), "v cache"));
      }
    }
  }
}

// A ragged attention batch: per sequence, keys already cached before this step and query rows.
struct SeqSpec {
  int cached;   // positions [0, cached) are in the cache from earlier steps
  int queries;  // rows at positions [cached, cached + queries)
};

struct AttentionShape {
  const char* name;
  int heads, kv_heads, head_dim;
  int window;
};

const AttentionShape kAttentionShapes[] = {
    {"qwen3-30b", 32, 4, 128, 0}, {"bench", 16, 4, 64, 0}, {"tiny", 4, 2, 64, 0},
    {"mha", 16, 16, 64, 0},       {"hd256", 8, 2, 256, 0}, {"hd80-window", 8, 8, 80, 40},
    {"gq32", 32, 1, 64, 0},
};

// Prefill chunks, continued chunks, decodes and a speculative verify in one batch. The long
// prefill is 448 rows on a GPU, 120 on the CPU emulator (still several key blocks and tiles).
#if defined(MOE_CUDA_EMULATION)
constexpr int kLongPrefill = 120;
#else
constexpr int kLongPrefill = 448;
#endif
std::vector<std::vector<SeqSpec>> AttentionBatches() {
  return {
      {},
      {{0, 1}},
      {{0, 7}},
      {{40, 1}, {0, 37}, {50, 20}, {100, 1}, {1, 1}, {30, 4}},
      {{0, 64}},
      {{0, kLongPrefill}, {700, 1}, {129, 1}, {31, 1}, {0, 33}, {17, 16}, {300, 12}},
      {{1000, 1}, {2047, 1}, {5, 1}, {64, 1}, {65, 1}, {333, 1}, {0, 1}, {31, 1}},
  };
}

// Caches filled with the same random K/V in both backends, block tables of shuffled
// (non-contiguous) block ids, and random q rows for a ragged batch of sequences.
class AttentionCase {
 public:
  static constexpr int kBlockSize = 16;

  AttentionCase(BackendPair& pair, const AttentionShape& shape, DType dtype,
                std::vector<SeqSpec> seqs, uint64_t seed)
      : pair_(pair), shape_(shape), dtype_(dtype), seqs_(std::move(seqs)) {
    kv_width_ = shape.kv_heads * shape.head_dim;
    q_width_ = shape.heads * shape.head_dim;
    int total_blocks = 0;
    for (const SeqSpec& s : seqs_) {
      const int blocks = (s.cached + s.queries + kBlockSize - 1) / kBlockSize;
      max_blocks_ = std::max(max_blocks_, blocks);
      total_blocks += blocks;
    }
    const int num_blocks = total_blocks + 8;
    std::vector<int32_t> free(num_blocks);
    std::iota(free.begin(), free.end(), 0);
    std::shuffle(free.begin(), free.end(), std::mt19937(seed));
    tables_.assign(std::max<size_t>(seqs_.size(), 1) * max_blocks_, -1);
    size_t next = 0;
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int blocks = (seqs_[s].cached + seqs_[s].queries + kBlockSize - 1) / kBlockSize;
      for (int b = 0; b < blocks; ++b) tables_[s * max_blocks_ + b] = free[next++];
      first_row_.push_back(tokens_);
      tokens_ += seqs_[s].queries;
    }
    const int64_t slots = static_cast<int64_t>(num_blocks) * kBlockSize;
    k_cache_ = std::make_unique<MirroredMatrix>(pair, dtype, slots, kv_width_);
    v_cache_ = std::make_unique<MirroredMatrix>(pair, dtype, slots, kv_width_);
    k_cache_->Randomize(2.f, seed + 1);
    v_cache_->Randomize(1.f, seed + 2);
    q_ = RandomF32(static_cast<size_t>(tokens_) * q_width_, 2.f, seed + 3);
    for (float& v : q_) v = RoundTo(dtype, v);
  }

  size_t row_width() const { return static_cast<size_t>(q_width_); }
  int first_row(int seq) const { return first_row_[seq]; }

  // A sub-batch entry: rows [begin, begin + count) of sequence `seq` (its own row index).
  struct Part {
    int seq, begin, count;
  };

  std::vector<Part> AllParts() const {
    std::vector<Part> parts;
    for (size_t s = 0; s < seqs_.size(); ++s) {
      parts.push_back(Part{static_cast<int>(s), 0, seqs_[s].queries});
    }
    return parts;
  }

  // Runs the parts as one batch on both backends (q rows inside a wider buffer, as the model's
  // fused qkv); returns {reference, gpu} outputs in part order.
  std::pair<std::vector<float>, std::vector<float>> Run(const std::vector<Part>& parts,
                                                        int sliding_window) {
    const int wide_width = q_width_ + 2 * kv_width_;
    std::vector<float> wide_values;
    std::vector<int32_t> positions, query_start{0}, tables;
    for (const Part& part : parts) {
      const SeqSpec& spec = seqs_[part.seq];
      for (int i = part.begin; i < part.begin + part.count; ++i) {
        const float* row = q_.data() + static_cast<size_t>(first_row_[part.seq] + i) * q_width_;
        wide_values.insert(wide_values.end(), row, row + q_width_);
        wide_values.insert(wide_values.end(), 2 * kv_width_, 0.f);
        positions.push_back(spec.cached + i);
      }
      query_start.push_back(static_cast<int32_t>(positions.size()));
      tables.insert(tables.end(), tables_.begin() + part.seq * max_blocks_,
                    tables_.begin() + (part.seq + 1) * max_blocks_);
    }
    const int t = static_cast<int>(positions.size());
    MirroredMatrix wide(pair_, dtype_, t, wide_width);
    wide.Set(wide_values);
    MirroredMatrix out(pair_, dtype_, t, q_width_);
    MirroredArray<int32_t> d_qs(pair_, query_start.size()), d_pos(pair_, positions.size()),
        d_tables(pair_, tables.size());
    d_qs.Set(query_start);
    d_pos.Set(positions);
    d_tables.Set(tables);
    auto args = [&](const TensorView& m, const TensorView& kc, const TensorView& vc, int32_t* qs,
                    int32_t* pos, int32_t* tab, const TensorView& o) {
      engine::AttentionArgs a;
      a.q = m.ColRange(0, q_width_);
      a.cache = engine::KvCacheView{kc, vc, kBlockSize};
      a.query_start = qs;
      a.positions = pos;
      a.block_tables = tab;
      a.max_blocks_per_seq = max_blocks_;
      a.num_seqs = static_cast<int>(parts.size());
      a.num_tokens = t;
      a.num_heads = shape_.heads;
      a.num_kv_heads = shape_.kv_heads;
      a.head_dim = shape_.head_dim;
      a.scale = 1.f / std::sqrt(static_cast<float>(shape_.head_dim));
      a.sliding_window = sliding_window;
      a.out = o;
      return a;
    };
    MOE_CHECK(pair_.ref
                  ->Attention(args(wide.ref(), k_cache_->ref(), v_cache_->ref(), d_qs.ref(),
                                   d_pos.ref(), d_tables.ref(), out.ref()),
                              Stream{})
                  .ok());
    const Status s = pair_.gpu->Attention(args(wide.gpu(), k_cache_->gpu(), v_cache_->gpu(),
                                               d_qs.gpu(), d_pos.gpu(), d_tables.gpu(), out.gpu()),
                                          Stream{});
    EXPECT_TRUE(s.ok()) << s.message();
    return {out.ReadRef(), out.ReadGpu()};
  }

 private:
  BackendPair& pair_;
  AttentionShape shape_;
  DType dtype_;
  std::vector<SeqSpec> seqs_;
  int kv_width_ = 0, q_width_ = 0, max_blocks_ = 1, tokens_ = 0;
  std::vector<int32_t> tables_, first_row_;
  std::unique_ptr<MirroredMatrix> k_cache_, v_cache_;
  std::vector<float> q_;
};

TEST(CudaBackendOps, AttentionRaggedPagedMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (const AttentionShape& shape : kAttentionShapes) {
    for (DType dtype : kDtypes) {
      int batch_index = 0;
      for (const auto& seqs : AttentionBatches()) {
        SCOPED_TRACE(std::string(shape.name) + " " + DTypeLabel(dtype) + " batch " +
                     std::to_string(batch_index));
        AttentionCase c(pair, shape, dtype, seqs, 100 + batch_index++);
        const auto [ref, gpu] = c.Run(c.AllParts(), shape.window);
        EXPECT_TRUE(Near(gpu, ref, ReductionTolerance(dtype), "attention"));
      }
    }
  }
}

// Attention is batch invariant in every mode: a row's output bits do not depend on the other
// rows of the batch, nor on how its sequence's rows are chunked.
TEST(CudaBackendOps, AttentionRowsAreBatchInvariant) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (const AttentionShape& shape : {kAttentionShapes[0], kAttentionShapes[5]}) {
    for (DType dtype : kDtypes) {
      SCOPED_TRACE(std::string(shape.name) + " " + DTypeLabel(dtype));
      AttentionCase c(pair, shape, dtype, {{0, 37}, {40, 1}, {50, 20}, {300, 12}, {77, 1}}, 7);
      const std::vector<float> all = c.Run(c.AllParts(), shape.window).second;
      const size_t w = c.row_width();
      auto rows_of = [&](int seq, int begin, int count) {
        const size_t first = static_cast<size_t>(c.first_row(seq) + begin) * w;
        return std::vector<float>(all.begin() + first, all.begin() + first + count * w);
      };
      // Each sequence alone.
      for (const auto& part : c.AllParts()) {
        EXPECT_TRUE(BitEqual(c.Run({part}, shape.window).second, rows_of(part.seq, 0, part.count),
                             "sequence " + std::to_string(part.seq) + " alone"));
      }
      // The 37-row prefill in chunks of 1, 5 and 16 rows, each chunk after a decode row.
      for (int chunk : {1, 5, 16}) {
        for (int begin = 0; begin < 37; begin += chunk) {
          const int count = std::min(chunk, 37 - begin);
          const auto got = c.Run({{1, 0, 1}, {0, begin, count}}, shape.window).second;
          EXPECT_TRUE(BitEqual(std::vector<float>(got.begin() + w, got.end()),
                               rows_of(0, begin, count),
                               "chunk " + std::to_string(chunk) + " at " + std::to_string(begin)));
        }
      }
    }
  }
}

TEST(CudaBackendOps, SiluMulMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (int f : {256, 768, 1000, 6}) {
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        SCOPED_TRACE("F" + std::to_string(f) + " " + DTypeLabel(dtype) + " T" + std::to_string(t));
        MirroredMatrix x(pair, dtype, t, 2 * f + 4);
        x.Randomize(4.f, t + f);
        MirroredMatrix out(pair, dtype, t, f);
        ASSERT_TRUE(pair.ref->SiluMul({x.ref().ColRange(0, 2 * f), out.ref()}, Stream{}).ok());
        ASSERT_TRUE(pair.gpu->SiluMul({x.gpu().ColRange(0, 2 * f), out.gpu()}, Stream{}).ok());
        EXPECT_TRUE(Near(out.ReadGpu(), out.ReadRef(), RowTolerance(dtype), "silu_mul"));
      }
    }
  }
}

}  // namespace
}  // namespace moe::cuda::testing
