// MoE kernel benchmarks on the GPU (issue 9): each custom kernel against its library baseline
// and roofline, printed as a table and written as JSON.
//
//   copy       cudaMemcpyAsync device-to-device bandwidth (read + write bytes / time): the
//              bandwidth roofline for every memory-bound kernel below
//   router     router top-k, logits read + ids/weights written, GB/s
//   permute    Permute (maps + row copy), maps only, UnpermuteCombine, and permute + combine,
//              GB/s and fraction of copy bandwidth
//   prefill    grouped GEMM gate+up (SwiGLU) and down, TFLOP/s, against cublasGemmGroupedBatchedEx,
//              a loop of cublasGemmEx, and one dense cublasGemmEx of the same FLOPs
//   decode     the same GEMMs at a few rows per expert as achieved HBM GB/s (each active
//              expert's weights counted once) against copy bandwidth
//
// Every timed iteration starts with a cold L2 (a 256 MiB memset in between) and is timed with
// CUDA events; iterations are enqueued back to back so host launch overhead is hidden, and the
// median is reported. Usage:
//   moe_kernels_bench [--json PATH] [--quick] [--smoke] [--iters N] [--filter SUBSTRING]
// --smoke runs one tiny shape once through every section: it checks the harness, not speed (the
// CPU emulator build, moe_kernels_bench_emu, runs it in the test suite).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/kernels/cuda/bench_fill.h"
#include "core/bf16.h"
#include "core/check.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/grouped_gemm_cublas.h"
#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/permute.h"
#include "cuda/kernels/router_topk.h"
#include "cuda/kernels/unpermute_combine.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::bench {
namespace {

using cuda::testing::MoeModelShape;

struct Options {
  std::string json_path;
  bool quick = false;
  bool smoke = false;
  int iters = 20;
  std::string filter;
};

// One result row. `fields` are extra numbers (baselines and ratios) for the JSON.
struct Record {
  std::string section;
  std::string name;
  double time_us = 0;
  std::string unit;  // "GB/s" or "TFLOP/s"
  double value = 0;
  std::vector<std::pair<std::string, double>> fields;
};

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count) : count_(count) {
    MOE_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(count, 1) * sizeof(T)));
  }
  ~DeviceArray() {
    if (data_ != nullptr) cudaFree(data_);
  }
  DeviceArray(DeviceArray&& o) noexcept : data_(o.data_), count_(o.count_) { o.data_ = nullptr; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(count_, o.count_);
    return *this;
  }
  void Upload(const std::vector<T>& host) {
    MOE_CHECK_LE(host.size(), count_);
    if (!host.empty()) {
      MOE_CUDA_CHECK(
          cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  T* get() const { return data_; }
  size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

#define BENCH_CUBLAS_CHECK(expr)                                           \
  do {                                                                     \
    const cublasStatus_t bench_status_ = (expr);                           \
    MOE_CHECK(bench_status_ == CUBLAS_STATUS_SUCCESS)                      \
        << #expr << ": cuBLAS status " << static_cast<int>(bench_status_); \
  } while (0)

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {
    MOE_CUDA_CHECK(cudaStreamCreate(&stream_));
    MOE_CHECK(cublasCreate(&cublas_) == CUBLAS_STATUS_SUCCESS);
    flush_ = DeviceArray<uint8_t>(FlushBytes());
  }
  ~Bench() {
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  int Run();

 private:
  size_t FlushBytes() const { return options_.smoke ? size_t{1} << 20 : size_t{256} << 20; }
  // Token counts of a section: the full list, the --quick list, or two for --smoke.
  std::vector<int> TokenCounts(std::vector<int> full, std::vector<int> quick) const {
    if (options_.smoke) return {1, 64};
    return options_.quick ? quick : full;
  }

  bool Selected(const std::string& name) const {
    return options_.filter.empty() || name.find(options_.filter) != std::string::npos;
  }

  // Median GPU time (us) of fn() over options_.iters iterations, each after an L2 flush.
  double MedianUs(const std::function<void()>& fn) {
    fn();
    fn();
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const int iters = std::max(1, options_.iters);
    std::vector<cudaEvent_t> start(iters), stop(iters);
    for (int i = 0; i < iters; ++i) {
      MOE_CUDA_CHECK(cudaEventCreate(&start[i]));
      MOE_CUDA_CHECK(cudaEventCreate(&stop[i]));
    }
    for (int i = 0; i < iters; ++i) {
      MOE_CUDA_CHECK(cudaMemsetAsync(flush_.get(), i & 0xff, FlushBytes(), stream_));
      MOE_CUDA_CHECK(cudaEventRecord(start[i], stream_));
      fn();
      MOE_CUDA_CHECK(cudaEventRecord(stop[i], stream_));
    }
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<double> us(iters);
    for (int i = 0; i < iters; ++i) {
      float ms = 0;
      MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, start[i], stop[i]));
      us[i] = 1000.0 * ms;
      cudaEventDestroy(start[i]);
      cudaEventDestroy(stop[i]);
    }
    std::nth_element(us.begin(), us.begin() + iters / 2, us.end());
    return us[iters / 2];
  }

  void Add(Record r) {
    std::printf("%-9s %-46s %10.1f us %9.1f %-7s", r.section.c_str(), r.name.c_str(), r.time_us,
                r.value, r.unit.c_str());
    for (const auto& [key, v] : r.fields) std::printf("  %s=%.3g", key.c_str(), v);
    std::printf("\n");
    std::fflush(stdout);
    records_.push_back(std::move(r));
  }

  void CopyBandwidth();
  void Router(const MoeModelShape& m);
  void PermuteAndCombine(const MoeModelShape& m);
  void GroupedGemms(const MoeModelShape& m);
  void WriteJson(const cudaDeviceProp& prop) const;

  Options options_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceArray<uint8_t> flush_;
  double copy_gbps_ = 0;
  std::vector<Record> records_;
};

void Bench::CopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  DeviceArray<uint8_t> src(bytes), dst(bytes);
  MOE_CUDA_CHECK(cudaMemset(src.get(), 1, bytes));
  const double us = MedianUs([&] {
    MOE_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream_));
  });
  copy_gbps_ = 2.0 * bytes / (us * 1e3);
  Add({"copy", "d2d memcpy 1 GiB (read+write)", us, "GB/s", copy_gbps_, {}});
}

// Routed tokens of a model: ids on the device and host-side offsets.
struct Routing {
  std::vector<int32_t> ids;
  std::vector<int32_t> offsets;  // [E + 1]
  int active_experts = 0;
};

Routing MakeRouting(int tokens, const MoeModelShape& m, uint64_t seed) {
  Routing r;
  r.ids = cuda::testing::RandomRouting(tokens, m.top_k, m.num_experts, 0.0, seed);
  r.offsets = cuda::testing::OffsetsOfRouting(r.ids, m.num_experts);
  for (int e = 0; e < m.num_experts; ++e) r.active_experts += r.offsets[e + 1] > r.offsets[e];
  return r;
}

std::string ShapeName(const MoeModelShape& m, int tokens) {
  return std::string(m.name) + " T=" + std::to_string(tokens) +
         " E=" + std::to_string(m.num_experts) + " k=" + std::to_string(m.top_k);
}

void Bench::Router(const MoeModelShape& m) {
  for (int tokens : TokenCounts({64, 4096, 16384}, {64, 4096, 16384})) {
    const std::string name = "router " + ShapeName(m, tokens);
    if (!Selected(name)) continue;
    const size_t n = static_cast<size_t>(tokens) * m.num_experts;
    DeviceArray<Bf16> logits(n);
    MOE_CUDA_CHECK(FillRandomBf16(logits.get(), n, 4.f, 7, stream_));
    DeviceArray<int32_t> ids(static_cast<size_t>(tokens) * m.top_k);
    DeviceArray<float> weights(static_cast<size_t>(tokens) * m.top_k);
    const cuda::RouterTopKProblem p{.num_tokens = tokens,
                                    .num_experts = m.num_experts,
                                    .top_k = m.top_k,
                                    .logits_dtype = DType::kBF16};
    const double us = MedianUs([&] {
      MOE_CUDA_CHECK(cuda::RouterTopK(p, {logits.get(), ids.get(), weights.get()}, stream_));
    });
    const double bytes = n * 2.0 + tokens * m.top_k * 8.0;
    Add({"router",
         name,
         us,
         "GB/s",
         bytes / (us * 1e3),
         {{"frac_of_copy", bytes / (us * 1e3) / copy_gbps_}}});
  }
}

void Bench::PermuteAndCombine(const MoeModelShape& m) {
  const std::vector<int> token_counts = TokenCounts({64, 512, 4096, 16384}, {64, 4096});
  for (int tokens : token_counts) {
    const std::string shape = ShapeName(m, tokens);
    if (!Selected("permute " + shape)) continue;
    const Routing routing = MakeRouting(tokens, m, 11);
    const int64_t slots = static_cast<int64_t>(tokens) * m.top_k;
    const int64_t row_bytes = 2LL * m.hidden;
    DeviceArray<Bf16> x(static_cast<size_t>(tokens) * m.hidden), rows(slots * m.hidden),
        out(static_cast<size_t>(tokens) * m.hidden);
    MOE_CUDA_CHECK(FillRandomBf16(x.get(), x.size(), 1.f, 1, stream_));
    DeviceArray<int32_t> ids(slots), offsets(m.num_experts + 1), row_to_token(slots),
        slot_to_row(slots);
    ids.Upload(routing.ids);
    DeviceArray<float> weights(slots);
    std::vector<float> host_weights(slots, 1.f / m.top_k);
    weights.Upload(host_weights);
    const cuda::PermuteProblem problem{.num_tokens = tokens,
                                       .top_k = m.top_k,
                                       .num_experts = m.num_experts,
                                       .row_bytes = row_bytes};
    const size_t ws_bytes = cuda::PermuteWorkspaceSize(problem);
    DeviceArray<uint8_t> ws(ws_bytes);
    cuda::PermuteBuffers buffers{.x = x.get(),
                                 .expert_ids = ids.get(),
                                 .rows = rows.get(),
                                 .expert_offsets = offsets.get(),
                                 .row_to_token = row_to_token.get(),
                                 .slot_to_row = slot_to_row.get()};
    const double rows_total = routing.offsets.back();
    const double index_bytes = slots * 4.0 * 3;  // ids read twice, maps written
    const double permute_bytes = 2.0 * rows_total * row_bytes + index_bytes;
    const double permute_us = MedianUs(
        [&] { MOE_CUDA_CHECK(cuda::Permute(problem, buffers, ws.get(), ws_bytes, stream_)); });
    Add({"permute",
         "permute rows+maps " + shape,
         permute_us,
         "GB/s",
         permute_bytes / (permute_us * 1e3),
         {{"frac_of_copy", permute_bytes / (permute_us * 1e3) / copy_gbps_}}});

    cuda::PermuteBuffers maps_only = buffers;
    maps_only.rows = nullptr;
    const double maps_us = MedianUs(
        [&] { MOE_CUDA_CHECK(cuda::Permute(problem, maps_only, ws.get(), ws_bytes, stream_)); });
    Add({"permute",
         "permute maps only " + shape,
         maps_us,
         "GB/s",
         index_bytes / (maps_us * 1e3),
         {}});

    const cuda::UnpermuteCombineProblem combine{
        .num_tokens = tokens, .top_k = m.top_k, .hidden = m.hidden, .dtype = DType::kBF16};
    const cuda::UnpermuteCombineBuffers combine_buffers{.y_rows = rows.get(),
                                                        .slot_to_row = slot_to_row.get(),
                                                        .expert_weights = weights.get(),
                                                        .out = out.get()};
    const double combine_bytes =
        rows_total * row_bytes + tokens * static_cast<double>(row_bytes) + slots * 8.0;
    const double combine_us = MedianUs(
        [&] { MOE_CUDA_CHECK(cuda::UnpermuteCombine(combine, combine_buffers, stream_)); });
    Add({"permute",
         "unpermute-combine " + shape,
         combine_us,
         "GB/s",
         combine_bytes / (combine_us * 1e3),
         {{"frac_of_copy", combine_bytes / (combine_us * 1e3) / copy_gbps_}}});

    const double both_us = MedianUs([&] {
      MOE_CUDA_CHECK(cuda::Permute(problem, buffers, ws.get(), ws_bytes, stream_));
      MOE_CUDA_CHECK(cuda::UnpermuteCombine(combine, combine_buffers, stream_));
    });
    const double both_bytes = permute_bytes + combine_bytes;
    Add({"permute",
         "permute+unpermute " + shape,
         both_us,
         "GB/s",
         both_bytes / (both_us * 1e3),
         {{"frac_of_copy", both_bytes / (both_us * 1e3) / copy_gbps_}}});
  }
}

// Prefill shapes report TFLOP/s; decode shapes (few rows per expert) report weight-streaming
// GB/s. Both compare the custom kernel with the cuBLAS baselines on the same permuted rows.
void Bench::GroupedGemms(const MoeModelShape& m) {
  const int hidden = m.hidden, inter = m.intermediate, experts = m.num_experts;
  std::vector<int> token_counts = TokenCounts({1, 8, 64, 512, 4096, 16384}, {1, 64, 4096});
  bool any = false;
  for (int t : token_counts) any = any || Selected("gemm " + ShapeName(m, t));
  if (!any) return;
  // Weights: gate+up packed [E, 2F, H] and down [E, H, F].
  const size_t gu = static_cast<size_t>(experts) * 2 * inter * hidden;
  DeviceArray<Bf16> w_gate_up(gu), w_down(gu / 2);
  MOE_CUDA_CHECK(FillRandomBf16(w_gate_up.get(), gu, 3.f / std::sqrt(float(hidden)), 2, stream_));
  MOE_CUDA_CHECK(FillRandomBf16(w_down.get(), gu / 2, 3.f / std::sqrt(float(inter)), 3, stream_));

  for (int tokens : token_counts) {
    const std::string shape = ShapeName(m, tokens);
    if (!Selected("gemm " + shape)) continue;
    const Routing routing = MakeRouting(tokens, m, 13);
    const int64_t capacity = static_cast<int64_t>(tokens) * m.top_k;
    const int32_t rows = routing.offsets.back();
    DeviceArray<Bf16> x(static_cast<size_t>(tokens) * hidden), a(capacity * hidden),
        h(capacity * inter), y(capacity * hidden), scratch(capacity * 2 * inter);
    MOE_CUDA_CHECK(FillRandomBf16(x.get(), x.size(), 1.f, 4, stream_));
    DeviceArray<int32_t> ids(capacity), offsets(experts + 1), row_to_token(capacity),
        slot_to_row(capacity);
    ids.Upload(routing.ids);
    const cuda::PermuteProblem pp{
        .num_tokens = tokens, .top_k = m.top_k, .num_experts = experts, .row_bytes = 2LL * hidden};
    DeviceArray<uint8_t> pws(cuda::PermuteWorkspaceSize(pp));
    MOE_CUDA_CHECK(cuda::Permute(pp,
                                 {.x = x.get(),
                                  .expert_ids = ids.get(),
                                  .rows = a.get(),
                                  .expert_offsets = offsets.get(),
                                  .row_to_token = row_to_token.get(),
                                  .slot_to_row = slot_to_row.get()},
                                 pws.get(), pws.size(), stream_));
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));

    const cuda::GroupedGemmProblem up{.num_experts = experts,
                                      .row_capacity = capacity,
                                      .n = 2 * inter,
                                      .k = hidden,
                                      .epilogue = cuda::GroupedGemmEpilogue::kSwiGlu};
    const cuda::GroupedGemmProblem down{
        .num_experts = experts, .row_capacity = capacity, .n = hidden, .k = inter};
    const bool decode = cuda::ResolveGroupedGemmTile(up) == cuda::GroupedGemmTile::kM16;
    const double up_us = MedianUs([&] {
      MOE_CUDA_CHECK(cuda::GroupedGemm(up,
                                       {.a = a.get(),
                                        .weights = w_gate_up.get(),
                                        .expert_offsets = offsets.get(),
                                        .out = h.get()},
                                       nullptr, 0, stream_));
    });
    const double up_gather_us = MedianUs([&] {
      MOE_CUDA_CHECK(cuda::GroupedGemm(up,
                                       {.a = x.get(),
                                        .a_row_index = row_to_token.get(),
                                        .weights = w_gate_up.get(),
                                        .expert_offsets = offsets.get(),
                                        .out = h.get()},
                                       nullptr, 0, stream_));
    });
    const double down_us = MedianUs([&] {
      MOE_CUDA_CHECK(cuda::GroupedGemm(
          down,
          {.a = h.get(), .weights = w_down.get(), .expert_offsets = offsets.get(), .out = y.get()},
          nullptr, 0, stream_));
    });

    // cuBLAS baselines: the plain products (gate+up without the SwiGLU epilogue: same FLOPs).
    cuda::CublasGroupedGemmProblem cb_up{.num_experts = experts,
                                         .n = 2 * inter,
                                         .k = hidden,
                                         .host_expert_offsets = routing.offsets.data()};
    cuda::CublasGroupedGemmProblem cb_down{.num_experts = experts,
                                           .n = hidden,
                                           .k = inter,
                                           .host_expert_offsets = routing.offsets.data()};
    const cuda::CublasGroupedGemmBuffers cb_up_buf{.a = a.get(),
                                                   .weights = w_gate_up.get(),
                                                   .expert_offsets = offsets.get(),
                                                   .out = scratch.get()};
    const cuda::CublasGroupedGemmBuffers cb_down_buf{
        .a = h.get(), .weights = w_down.get(), .expert_offsets = offsets.get(), .out = y.get()};
    const size_t cws_bytes = cuda::CublasGroupedGemmWorkspaceSize(experts);
    DeviceArray<uint8_t> cws(cws_bytes);
    auto grouped_us = [&](const cuda::CublasGroupedGemmProblem& p,
                          const cuda::CublasGroupedGemmBuffers& b) {
      if (cuda::CublasGroupedGemm(cublas_, p, b, cws.get(), cws_bytes, stream_) !=
          CUBLAS_STATUS_SUCCESS) {
        return std::nan("");  // unsupported on this device / cuBLAS build
      }
      return MedianUs([&] {
        BENCH_CUBLAS_CHECK(cuda::CublasGroupedGemm(cublas_, p, b, cws.get(), cws_bytes, stream_));
      });
    };
    const double cb_up_us = grouped_us(cb_up, cb_up_buf);
    const double cb_down_us = grouped_us(cb_down, cb_down_buf);
    const double loop_up_us = MedianUs(
        [&] { BENCH_CUBLAS_CHECK(cuda::CublasGemmLoop(cublas_, cb_up, cb_up_buf, stream_)); });
    const double loop_down_us = MedianUs(
        [&] { BENCH_CUBLAS_CHECK(cuda::CublasGemmLoop(cublas_, cb_down, cb_down_buf, stream_)); });

    const double up_flops = 2.0 * rows * (2.0 * inter) * hidden;
    const double down_flops = 2.0 * rows * hidden * inter;
    auto tflops = [](double flops, double us) { return flops / (us * 1e6); };
    if (!decode) {
      const double dense_up_us = MedianUs([&] {
        BENCH_CUBLAS_CHECK(cuda::CublasDenseGemm(cublas_, rows, 2 * inter, hidden, a.get(), hidden,
                                                 w_gate_up.get(), scratch.get(), 2 * inter,
                                                 stream_));
      });
      const double dense_down_us = MedianUs([&] {
        BENCH_CUBLAS_CHECK(cuda::CublasDenseGemm(cublas_, rows, hidden, inter, h.get(), inter,
                                                 w_down.get(), y.get(), hidden, stream_));
      });
      auto add = [&](const std::string& what, double flops, double us, double cb_us, double loop_us,
                     double dense_us) {
        Add({"prefill",
             what + " " + shape,
             us,
             "TFLOP/s",
             tflops(flops, us),
             {{"cublas_grouped_tflops", tflops(flops, cb_us)},
              {"cublas_loop_tflops", tflops(flops, loop_us)},
              {"dense_tflops", tflops(flops, dense_us)},
              {"vs_cublas_grouped", cb_us / us},
              {"vs_dense", dense_us / us}}});
      };
      add("gemm gate_up+swiglu", up_flops, up_us, cb_up_us, loop_up_us, dense_up_us);
      add("gemm gate_up+swiglu (gather A)", up_flops, up_gather_us, cb_up_us, loop_up_us,
          dense_up_us);
      add("gemm down", down_flops, down_us, cb_down_us, loop_down_us, dense_down_us);
    } else {
      // Bytes that must move: each active expert's weights once, A rows, outputs.
      const double w_up_bytes = routing.active_experts * 2.0 * inter * hidden * 2.0;
      const double w_down_bytes = routing.active_experts * 1.0 * hidden * inter * 2.0;
      const double up_bytes = w_up_bytes + rows * (hidden + inter) * 2.0;
      const double down_bytes = w_down_bytes + rows * (inter + hidden) * 2.0;
      auto gbps = [](double bytes, double us) { return bytes / (us * 1e3); };
      auto add = [&](const std::string& what, double bytes, double us, double cb_us, double loop_us,
                     double flops) {
        Add({"decode",
             what + " " + shape,
             us,
             "GB/s",
             gbps(bytes, us),
             {{"frac_of_copy", gbps(bytes, us) / copy_gbps_},
              {"cublas_grouped_gbps", gbps(bytes, cb_us)},
              {"cublas_loop_gbps", gbps(bytes, loop_us)},
              {"vs_cublas_grouped", cb_us / us},
              {"tflops", tflops(flops, us)}}});
      };
      add("gemm gate_up+swiglu", up_bytes, up_us, cb_up_us, loop_up_us, up_flops);
      add("gemm gate_up+swiglu (gather A)", up_bytes, up_gather_us, cb_up_us, loop_up_us, up_flops);
      add("gemm down", down_bytes, down_us, cb_down_us, loop_down_us, down_flops);
    }
  }
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

void Bench::WriteJson(const cudaDeviceProp& prop) const {
  std::ofstream out(options_.json_path);
  MOE_CHECK(out.good()) << "cannot write " << options_.json_path;
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  out << "{\n  \"benchmark\": \"moe_kernels_bench\",\n";
  out << "  \"device\": \"" << JsonEscape(prop.name) << "\",\n";
  out << "  \"compute_capability\": \"" << prop.major << "." << prop.minor << "\",\n";
  out << "  \"sms\": " << prop.multiProcessorCount << ",\n";
  out << "  \"l2_bytes\": " << prop.l2CacheSize << ",\n";
  out << "  \"cuda_runtime\": " << runtime << ",\n  \"cuda_driver\": " << driver << ",\n";
  out << "  \"iters\": " << options_.iters << ",\n";
  out << "  \"copy_gbps\": " << JsonNumber(copy_gbps_) << ",\n  \"records\": [\n";
  for (size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    out << "    {\"section\": \"" << r.section << "\", \"name\": \"" << JsonEscape(r.name)
        << "\", \"time_us\": " << JsonNumber(r.time_us) << ", \"unit\": \"" << r.unit
        << "\", \"value\": " << JsonNumber(r.value);
    for (const auto& [key, v] : r.fields) out << ", \"" << key << "\": " << JsonNumber(v);
    out << "}" << (i + 1 < records_.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
}

int Bench::Run() {
  int device = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  MOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::printf("device: %s (sm_%d%d, %d SMs, %d MiB L2)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.l2CacheSize >> 20);
  CopyBandwidth();
  const std::vector<MoeModelShape> models =
      options_.smoke
          ? std::vector<MoeModelShape>{{"smoke", 256, 128, 8, 2}}
          : std::vector<MoeModelShape>{cuda::testing::kBenchPreset, cuda::testing::kQwen3_30B_A3B,
                                       cuda::testing::kMixtral8x7B};
  for (const MoeModelShape& m : models) Router(m);
  for (const MoeModelShape& m : models) PermuteAndCombine(m);
  for (const MoeModelShape& m : models) GroupedGemms(m);
  if (!options_.json_path.empty()) {
    WriteJson(prop);
    std::printf("wrote %s\n", options_.json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace moe::bench

int main(int argc, char** argv) {
  moe::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--json") {
      options.json_path = value();
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--smoke") {
      options.smoke = true;
      options.iters = 1;
    } else if (arg == "--iters") {
      options.iters = std::atoi(value().c_str());
    } else if (arg == "--filter") {
      options.filter = value();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--json PATH] [--quick] [--smoke] [--iters N] [--filter SUBSTRING]\n",
                   argv[0]);
      return arg == "--help" || arg == "-h" ? 0 : 2;
    }
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "moe_kernels_bench: no CUDA device\n");
    return 1;
  }
  return moe::bench::Bench(options).Run();
}
