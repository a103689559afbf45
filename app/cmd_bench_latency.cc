// `moeserve bench latency`: vLLM-style offline latency of one static batch, in process. B prompts
// of I random tokens are prefilled (whole prompts packed into steps of up to
// --max-step-tokens tokens), then the B sequences decode together for O - 1 more greedy steps
// (the first output token comes from the prefill). Engine::Model::Forward is called directly
// with hand-made TokenBatches; KV blocks are assigned trivially (sequence s owns a contiguous
// range). Reports throughput plus how close the run came to this machine's limits, measured in
// the same process: decode against the memory roofline (bytes each step must read: attention
// and router weights, each distinct routed expert's weights once, lm_head, the KV cache) and
// prefill against the arithmetic peak.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "app/backend_factory.h"
#include "app/commands.h"
#include "app/runtime_options.h"
#include "batching/token_batch.h"
#include "core/clock.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/machine_probe.h"

namespace moe::app {
namespace {

struct BenchLatencyOptions {
  RuntimeOptions runtime;
  int input_len = 32;
  int output_len = 128;
  int batch_size = 8;
  int num_iters = 3;
  int num_iters_warmup = 1;
  int max_step_tokens = 2048;
  bool no_roofline = false;
  std::string json;
};

// What one iteration measured.
struct IterationResult {
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double decode_bytes = 0;  // memory-roofline bytes over all decode steps
  double prefill_flops = 0;
  int decode_steps = 0;
  double distinct_experts = 0;  // per MoE layer, averaged over decode steps
};

int64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

// Bytes and FLOPs of the model's parts, from its config and packed size.
struct ModelCost {
  double bytes_per_weight = 2;
  double attn_bytes = 0;    // one layer's qkv + o
  double router_bytes = 0;  // one MoE layer
  double expert_bytes = 0;  // one expert
  double dense_bytes = 0;   // one dense MLP layer (+ shared expert of a MoE layer)
  double lm_head_bytes = 0;
  double kv_bytes_per_position = 0;  // all layers, K and V

  explicit ModelCost(const engine::Model& m) {
    const model::ModelConfig& c = m.config();
    const double params = static_cast<double>(c.TotalParameters());
    bytes_per_weight = params > 0 && m.packed_weight_bytes() / params > 3 ? 4 : 2;
    const double h = c.hidden_size;
    attn_bytes = bytes_per_weight * h * (2.0 * c.q_size() + 2.0 * c.kv_size());
    router_bytes = bytes_per_weight * h * c.num_experts;
    expert_bytes = bytes_per_weight * 3 * h * c.moe_intermediate_size;
    dense_bytes = bytes_per_weight * 3 * h * c.intermediate_size;
    lm_head_bytes = bytes_per_weight * h * c.vocab_size;
    kv_bytes_per_position =
        2.0 * c.num_layers * c.kv_size() * DTypeSize(m.runtime().activation_dtype);
  }
};

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int len, int vocab) {
  std::uniform_int_distribution<int32_t> dist(3, std::max(3, vocab - 1));
  std::vector<int32_t> ids(len);
  for (int32_t& id : ids) id = dist(rng);
  return ids;
}

int32_t Argmax(const float* row, int n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

StatusOr<IterationResult> RunIteration(ModelSession& session, const BenchLatencyOptions& o,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const ModelCost& cost) {
  engine::Model& model = *session.model;
  const model::ModelConfig& c = model.config();
  const int vocab = c.vocab_size;
  const int b = o.batch_size;
  const int bs = model.runtime().block_size;
  const int blocks_per_seq = (o.input_len + o.output_len + bs - 1) / bs;
  std::vector<std::vector<int32_t>> tables(b);
  for (int s = 0; s < b; ++s) {
    tables[s].resize(blocks_per_seq);
    std::iota(tables[s].begin(), tables[s].end(), s * blocks_per_seq);
  }
  IterationResult r;
  std::vector<float> logits(static_cast<size_t>(b) * vocab);
  std::vector<int32_t> next(b);
  std::vector<char> seen(std::max(c.num_experts, 1));
  engine::RoutingTrace trace;
  batching::TokenBatch batch;
  batch.block_size = bs;

  // Prefill: whole prompts (or chunks of long ones) packed into steps of max_tokens tokens.
  const int step_tokens = model.runtime().max_tokens;
  const int64_t prefill_start = MonotonicNanos();
  int seq = 0;
  int done = 0;  // prompt tokens of `seq` already computed
  while (seq < b) {
    batch.Clear();
    std::vector<int> logit_seqs;
    while (seq < b && batch.num_tokens() < step_tokens) {
      const int n = std::min(o.input_len - done, step_tokens - batch.num_tokens());
      const std::vector<int32_t> part(prompts[seq].begin() + done, prompts[seq].begin() + done + n);
      const bool last = done + n == o.input_len;
      MOE_RETURN_IF_ERROR(batch.AddSequence(part, done, tables[seq], last ? n - 1 : n));
      if (last) logit_seqs.push_back(seq);
      done += n;
      if (last) {
        ++seq;
        done = 0;
      }
    }
    MOE_RETURN_IF_ERROR(model.Forward(batch, *session.cache, logits.data(), &trace));
    for (size_t i = 0; i < logit_seqs.size(); ++i) {
      next[logit_seqs[i]] = Argmax(logits.data() + i * vocab, vocab);
    }
    // FLOPs of this step: 2 per weight used per token (experts as routed), attention, lm_head.
    const int t = batch.num_tokens();
    double flops = 0;
    for (int l = 0; l < c.num_layers; ++l) {
      flops += 2.0 * t * cost.attn_bytes / cost.bytes_per_weight;
      if (!c.IsMoeLayer(l)) flops += 2.0 * t * cost.dense_bytes / cost.bytes_per_weight;
    }
    for (size_t li = 0; li < trace.moe_layers.size(); ++li) {
      int64_t routed = 0;
      for (int i = 0; i < t * trace.top_k; ++i) {
        routed += trace.expert_ids[li * t * trace.top_k + i] >= 0;
      }
      flops += 2.0 * (t * cost.router_bytes + routed * cost.expert_bytes) / cost.bytes_per_weight;
    }
    for (int i = 0; i < t; ++i) {
      flops += 4.0 * c.num_layers * c.q_size() * (batch.positions[i] + 1);
    }
    flops += 2.0 * logit_seqs.size() * cost.lm_head_bytes / cost.bytes_per_weight;
    r.prefill_flops += flops;
  }
  r.prefill_seconds = (MonotonicNanos() - prefill_start) * 1e-9;

  // Decode: all B sequences one token per step.
  const int64_t decode_start = MonotonicNanos();
  for (int step = 1; step < o.output_len; ++step) {
    batch.Clear();
    const int32_t pos = o.input_len + step - 1;
    for (int s = 0; s < b; ++s) {
      const int32_t token = next[s];
      MOE_RETURN_IF_ERROR(batch.AddSequence({&token, 1}, pos, tables[s], 0));
    }
    MOE_RETURN_IF_ERROR(model.Forward(batch, *session.cache, logits.data(), &trace));
    for (int s = 0; s < b; ++s)
      next[s] = Argmax(logits.data() + static_cast<size_t>(s) * vocab, vocab);
    // Memory roofline bytes of this step.
    double bytes = cost.lm_head_bytes + cost.kv_bytes_per_position * b * (pos + 1);
    for (int l = 0; l < c.num_layers; ++l) {
      bytes += cost.attn_bytes + (c.IsMoeLayer(l) ? cost.router_bytes : cost.dense_bytes);
    }
    double distinct_sum = 0;
    for (size_t li = 0; li < trace.moe_layers.size(); ++li) {
      std::fill(seen.begin(), seen.end(), 0);
      int distinct = 0;
      for (int i = 0; i < b * trace.top_k; ++i) {
        const int32_t e = trace.expert_ids[li * b * trace.top_k + i];
        if (e >= 0 && !seen[e]) {
          seen[e] = 1;
          ++distinct;
        }
      }
      distinct_sum += distinct;
      bytes += distinct * cost.expert_bytes;
    }
    if (!trace.moe_layers.empty()) r.distinct_experts += distinct_sum / trace.moe_layers.size();
    r.decode_bytes += bytes;
    ++r.decode_steps;
  }
  r.decode_seconds = (MonotonicNanos() - decode_start) * 1e-9;
  if (r.decode_steps > 0) r.distinct_experts /= r.decode_steps;
  return r;
}

Status RunBenchLatency(const BenchLatencyOptions& o) {
  MOE_ASSIGN_OR_RETURN(const model::ModelConfig config,
                       model::ModelConfig::FromDirectory(o.runtime.model_dir));
  RuntimeOptions runtime = o.runtime;
  if (runtime.max_context == 0) runtime.max_context = o.input_len + o.output_len;
  if (runtime.max_context < o.input_len + o.output_len) {
    return InvalidArgument("--max-context ", runtime.max_context, " is below input + output (",
                           o.input_len + o.output_len, ")");
  }
  SessionLimits limits;
  limits.max_seqs = o.batch_size;
  limits.max_tokens = std::max(
      o.batch_size, static_cast<int>(std::min<int64_t>(
                        static_cast<int64_t>(o.batch_size) * o.input_len, o.max_step_tokens)));
  engine::KvCacheConfig kv;
  kv.num_layers = config.num_layers;
  kv.kv_heads = config.num_kv_heads;
  kv.head_dim = config.head_dim;
  kv.block_size = limits.block_size;
  kv.dtype = runtime.activations == "f32" ? DType::kF32 : DType::kBF16;
  const int64_t blocks_per_seq = (runtime.max_context + limits.block_size - 1) / limits.block_size;
  limits.kv_cache_bytes = static_cast<int64_t>(kv.BytesPerBlock()) * blocks_per_seq * o.batch_size;
  MOE_ASSIGN_OR_RETURN(auto session, OpenSession(runtime, limits));
  const int64_t rss_loaded = ResidentBytes();

  int threads = runtime.threads > 0 ? runtime.threads : engine::cpu::PhysicalCoreCount();
  std::string isa = "n/a";
  engine::cpu::CpuIsa probe_isa = engine::cpu::DetectCpuIsa();
  if (auto* cpu = dynamic_cast<engine::cpu::CpuBackend*>(session->backend.get())) {
    threads = cpu->num_threads();
    probe_isa = cpu->isa();
    isa = std::string(engine::cpu::CpuIsaName(cpu->isa()));
  }
  const ModelCost cost(*session->model);

  // The machine's limits, measured in this process on the same thread count, before and after
  // the runs (the better of the two: on a shared machine a probe only ever reads low).
  double read_bw = 0, peak = 0;
  auto probe = [&] {
    if (o.no_roofline) return;
    // The best of 1 thread and `threads` threads, each the best of several passes.
    read_bw = std::max({read_bw, engine::cpu::MeasureReadBandwidth(size_t{1} << 30, 1, 8),
                        engine::cpu::MeasureReadBandwidth(size_t{1} << 30, threads, 8)});
    peak = std::max({peak, engine::cpu::MeasurePeakFlops(probe_isa, 1, 0.5),
                     engine::cpu::MeasurePeakFlops(probe_isa, threads, 0.5)});
  };
  probe();

  std::mt19937 rng(0);
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < o.batch_size; ++s) {
    prompts.push_back(RandomPrompt(rng, o.input_len, config.vocab_size));
  }
  for (int i = 0; i < o.num_iters_warmup; ++i) {
    MOE_ASSIGN_OR_RETURN(auto ignored, RunIteration(*session, o, prompts, cost));
    (void)ignored;
    std::cerr << "warm-up iteration " << i + 1 << "/" << o.num_iters_warmup << " done\n";
  }
  auto* cpu_backend = dynamic_cast<engine::cpu::CpuBackend*>(session->backend.get());
  if (cpu_backend != nullptr) {
    cpu_backend->ResetOpStats();
    cpu_backend->EnableOpStats(true);
  }
  std::vector<IterationResult> results;
  for (int i = 0; i < o.num_iters; ++i) {
    MOE_ASSIGN_OR_RETURN(auto r, RunIteration(*session, o, prompts, cost));
    std::cerr << "iteration " << i + 1 << "/" << o.num_iters << ": prefill " << r.prefill_seconds
              << " s, decode " << r.decode_seconds << " s\n";
    results.push_back(r);
  }
  const int64_t rss_end = ResidentBytes();
  nlohmann::ordered_json op_seconds;
  if (cpu_backend != nullptr) {
    cpu_backend->EnableOpStats(false);
    for (const auto& stat : cpu_backend->OpStats()) {
      op_seconds[stat.op] = stat.seconds / std::max(o.num_iters, 1);
    }
  }

  probe();

  IterationResult sum;
  std::vector<double> latencies;
  for (const IterationResult& r : results) {
    sum.prefill_seconds += r.prefill_seconds;
    sum.decode_seconds += r.decode_seconds;
    sum.decode_bytes += r.decode_bytes;
    sum.prefill_flops += r.prefill_flops;
    sum.decode_steps += r.decode_steps;
    sum.distinct_experts += r.distinct_experts;
    latencies.push_back(r.prefill_seconds + r.decode_seconds);
  }
  const double n = std::max<size_t>(results.size(), 1);
  const double prefill_tps =
      sum.prefill_seconds > 0 ? o.batch_size * o.input_len * n / sum.prefill_seconds : 0;
  const double decode_tps =
      sum.decode_seconds > 0 ? o.batch_size * sum.decode_steps / sum.decode_seconds : 0;
  const double avg_latency = std::accumulate(latencies.begin(), latencies.end(), 0.0) / n;
  // The best iteration: on a shared machine the others are slowed by whoever else runs.
  double best_prefill = 0, best_decode = 0, best_decode_bytes_rate = 0;
  for (const IterationResult& r : results) {
    if (r.prefill_seconds > 0) {
      best_prefill = std::max(best_prefill, o.batch_size * o.input_len / r.prefill_seconds);
    }
    if (r.decode_seconds > 0) {
      best_decode = std::max(best_decode, o.batch_size * r.decode_steps / r.decode_seconds);
      best_decode_bytes_rate = std::max(best_decode_bytes_rate, r.decode_bytes / r.decode_seconds);
    }
  }

  nlohmann::ordered_json j;
  j["prefill_tokens_per_second"] = prefill_tps;
  j["decode_tokens_per_second"] = decode_tps;
  j["avg_latency_seconds"] = avg_latency;
  j["batch_size"] = o.batch_size;
  j["input_len"] = o.input_len;
  j["output_len"] = o.output_len;
  j["threads"] = threads;
  j["backend"] = session->backend->Name();
  j["isa"] = isa;
  j["activations"] = runtime.activations;
  j["num_iters"] = results.size();
  j["latencies_seconds"] = latencies;
  j["prefill_tokens_per_second_best_iter"] = best_prefill;
  j["decode_tokens_per_second_best_iter"] = best_decode;
  j["prefill_seconds_avg"] = sum.prefill_seconds / n;
  j["decode_seconds_avg"] = sum.decode_seconds / n;
  j["decode_step_seconds_avg"] = sum.decode_steps > 0 ? sum.decode_seconds / sum.decode_steps : 0;
  j["decode_distinct_experts_per_layer"] = sum.distinct_experts / n;
  j["decode_bytes_per_step"] = sum.decode_steps > 0 ? sum.decode_bytes / sum.decode_steps : 0;
  j["prefill_flops_per_iter"] = sum.prefill_flops / n;
  j["prefill_gflops_per_second"] =
      sum.prefill_seconds > 0 ? sum.prefill_flops / sum.prefill_seconds / 1e9 : 0;
  if (!o.no_roofline) {
    j["measured_read_bandwidth_gbps"] = read_bw / 1e9;
    j["measured_peak_gflops"] = peak / 1e9;
    j["peak_kind"] = probe_isa == engine::cpu::CpuIsa::kAvx512Bf16 ? "vdpbf16ps" : "fp32 fma";
    // Achieved bandwidth of decode over measured bandwidth = roofline time / measured time.
    j["decode_memory_roofline_ratio"] =
        sum.decode_seconds > 0 ? sum.decode_bytes / read_bw / sum.decode_seconds : 0;
    j["decode_memory_roofline_ratio_best_iter"] = best_decode_bytes_rate / read_bw;
    j["decode_roofline_tokens_per_second"] =
        sum.decode_bytes > 0 ? o.batch_size * sum.decode_steps * read_bw / sum.decode_bytes : 0;
    j["prefill_compute_roofline_ratio"] =
        sum.prefill_seconds > 0 ? sum.prefill_flops / peak / sum.prefill_seconds : 0;
  }
  j["op_seconds_per_iter"] = op_seconds;
  j["packed_weight_bytes"] = session->model->packed_weight_bytes();
  j["kv_cache_bytes"] = session->cache->TotalBytes();
  j["workspace_bytes"] = session->model->workspace_bytes();
  j["resident_bytes_after_load"] = rss_loaded;
  j["resident_bytes_end"] = rss_end;
  const double budget =
      static_cast<double>(session->model->packed_weight_bytes() + session->cache->TotalBytes());
  j["resident_over_weights_plus_kv"] = budget > 0 ? rss_end / budget : 0;

  std::cout << j.dump(2) << "\n";
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    if (!out) return InvalidArgument("--json: cannot open '", o.json, "' for writing");
    out << j.dump(2) << "\n";
    if (!out) return DataLoss("--json: write to '", o.json, "' failed");
  }
  return OkStatus();
}

}  // namespace

Action RegisterBenchLatency(CLI::App& bench) {
  auto o = std::make_shared<BenchLatencyOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "latency", "Offline latency of one static batch: prefill B prompts, then decode together");
  o->runtime.Register(*cmd);
  cmd->add_option("--input-len", o->input_len, "prompt tokens per sequence")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--output-len", o->output_len, "generated tokens per sequence")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", o->batch_size, "sequences in the batch")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--num-iters", o->num_iters, "measured iterations")->check(CLI::PositiveNumber);
  cmd->add_option("--num-iters-warmup", o->num_iters_warmup, "unmeasured iterations first")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-step-tokens", o->max_step_tokens, "token budget of one prefill step")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-roofline", o->no_roofline,
                "skip the bandwidth / peak probes (and the ratios they give)");
  cmd->add_option("--json", o->json, "also write the results to this JSON file");
  return [o]() {
    const Status status = RunBenchLatency(*o);
    if (!status.ok()) {
      std::cerr << "moeserve bench latency: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
