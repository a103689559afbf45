// Secondary llama.cpp runner: the same prebuilt libraries that node-llama-cpp loads
// (@node-llama-cpp/linux-x64: libllama, libggml, the CPU variant picked at run time), driven
// directly through llama.h, the same workload shape as llama_bench.mjs / `moeserve bench latency`.
//
// Why it exists: node-llama-cpp never attaches a ggml threadpool to its contexts, so every
// llama_decode makes ggml create (and join) a fresh worker thread per graph; llama.cpp's own tools
// (llama-bench, llama-cli, llama-server) create one persistent threadpool and attach it. On a
// 2-vCPU machine the per-graph thread often starts on the core whose thread is already spinning in
// ggml_barrier, and the step waits for the scheduler. `--threadpool persistent` (default) runs
// llama.cpp the way its own tools do; `--threadpool none` reproduces node-llama-cpp's behaviour.
//
// Build (run.sh does it): headers from the llama.cpp source bundled in node-llama-cpp
// (llama/gitRelease.bundle, the same release as the prebuilt binary), link against the prebuilt .so.
//
//   llama_tp_bench --model M.gguf --batch-size B --input-len I --output-len O [--threads 2]
//                  [--num-iters 3] [--num-iters-warmup 1] [--threadpool persistent|none]
//                  [--backend-dir DIR] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// mulberry32, as in common.mjs (same prompts as the node-llama-cpp runner).
std::vector<std::vector<llama_token>> RandomPrompts(int count, int len, int vocab, uint32_t seed) {
  uint32_t s = seed;
  auto next = [&s]() {
    s += 0x6D2B79F5u;
    uint32_t t = s;
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + (t ^ (t >> 7)) * (t | 61u);
    return static_cast<double>(t ^ (t >> 14)) / 4294967296.0;
  };
  const int lo = 3, hi = std::max(3, vocab - 1);
  std::vector<std::vector<llama_token>> out(count, std::vector<llama_token>(len));
  for (auto& p : out)
    for (auto& t : p) t = lo + static_cast<int>(std::floor(next() * (hi - lo + 1)));
  return out;
}

llama_token Argmax(const float* row, int n) {
  return static_cast<llama_token>(std::max_element(row, row + n) - row);
}

void Quiet(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, json_path, backend_dir, threadpool_mode = "persistent";
  int B = 1, I = 32, O = 64, threads = 2, iters = 3, warmup = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n", a.c_str()); exit(2); }
      return argv[++i];
    };
    if (a == "--model") model_path = val();
    else if (a == "--batch-size") B = std::stoi(val());
    else if (a == "--input-len") I = std::stoi(val());
    else if (a == "--output-len") O = std::stoi(val());
    else if (a == "--threads") threads = std::stoi(val());
    else if (a == "--num-iters") iters = std::stoi(val());
    else if (a == "--num-iters-warmup") warmup = std::stoi(val());
    else if (a == "--threadpool") threadpool_mode = val();
    else if (a == "--backend-dir") backend_dir = val();
    else if (a == "--json") json_path = val();
    else { fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (model_path.empty()) { fprintf(stderr, "--model is required\n"); return 2; }

  llama_log_set(Quiet, nullptr);
  if (!backend_dir.empty()) ggml_backend_load_all_from_path(backend_dir.c_str());
  else ggml_backend_load_all();
  llama_backend_init();
  ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (!cpu_dev) { fprintf(stderr, "CPU backend not loaded\n"); return 1; }
  ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
  auto* tp_new = reinterpret_cast<decltype(ggml_threadpool_new)*>(
      ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new"));
  auto* tp_free = reinterpret_cast<decltype(ggml_threadpool_free)*>(
      ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free"));

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  const double l0 = Now();
  llama_model* model = llama_model_load_from_file(model_path.c_str(), mp);
  if (!model) { fprintf(stderr, "failed to load %s\n", model_path.c_str()); return 1; }
  const double load_s = Now() - l0;
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int V = llama_vocab_n_tokens(vocab);

  llama_context_params cp = llama_context_default_params();
  const int per_seq = ((I + O + 255) / 256) * 256;
  cp.n_ctx = static_cast<uint32_t>(per_seq * B);
  cp.n_batch = cp.n_ubatch = static_cast<uint32_t>(std::max(512, B));
  cp.n_seq_max = static_cast<uint32_t>(B);
  cp.n_threads = cp.n_threads_batch = threads;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) { fprintf(stderr, "failed to create context\n"); return 1; }

  ggml_threadpool* tp = nullptr;
  if (threadpool_mode == "persistent") {
    ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
    tp = tp_new(&tpp);
    llama_attach_threadpool(ctx, tp, nullptr);
  } else if (threadpool_mode != "none") {
    fprintf(stderr, "--threadpool persistent|none\n");
    return 2;
  }

  const auto prompts = RandomPrompts(B, I, V, 0);
  llama_batch batch = llama_batch_init(std::max(static_cast<int>(cp.n_batch), B), 0, 1);
  std::vector<llama_token> next(B);

  struct Iter { double prefill_s, decode_s; int steps; };
  auto run = [&]() -> Iter {
    llama_memory_clear(llama_get_memory(ctx), true);
    Iter r{};
    const double p0 = Now();
    // Prefill: all prompts, packed into batches of n_batch tokens; logits at each last position.
    int seq = 0, done = 0;
    while (seq < B) {
      batch.n_tokens = 0;
      std::vector<std::pair<int, int>> want;  // (seq, batch index)
      while (seq < B && batch.n_tokens < static_cast<int>(cp.n_batch)) {
        const int n = std::min(I - done, static_cast<int>(cp.n_batch) - batch.n_tokens);
        for (int k = 0; k < n; ++k) {
          const int j = batch.n_tokens++;
          batch.token[j] = prompts[seq][done + k];
          batch.pos[j] = done + k;
          batch.n_seq_id[j] = 1;
          batch.seq_id[j][0] = seq;
          batch.logits[j] = (done + k == I - 1);
          if (batch.logits[j]) want.emplace_back(seq, j);
        }
        done += n;
        if (done == I) { ++seq; done = 0; }
      }
      if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); exit(1); }
      for (auto [s, j] : want) next[s] = Argmax(llama_get_logits_ith(ctx, j), V);
    }
    const double p1 = Now();
    for (int step = 1; step < O; ++step) {
      batch.n_tokens = B;
      for (int s = 0; s < B; ++s) {
        batch.token[s] = next[s];
        batch.pos[s] = I + step - 1;
        batch.n_seq_id[s] = 1;
        batch.seq_id[s][0] = s;
        batch.logits[s] = 1;
      }
      if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); exit(1); }
      for (int s = 0; s < B; ++s) next[s] = Argmax(llama_get_logits_ith(ctx, s), V);
      ++r.steps;
    }
    const double p2 = Now();
    r.prefill_s = p1 - p0;
    r.decode_s = p2 - p1;
    return r;
  };

  for (int i = 0; i < warmup; ++i) {
    run();
    fprintf(stderr, "warm-up iteration %d/%d done\n", i + 1, warmup);
  }
  std::vector<Iter> res;
  for (int i = 0; i < iters; ++i) {
    res.push_back(run());
    fprintf(stderr, "iteration %d/%d: prefill %.6f s, decode %.6f s\n", i + 1, iters,
            res.back().prefill_s, res.back().decode_s);
  }
  double ps = 0, ds = 0, best_p = 0, best_d = 0;
  int steps = 0;
  for (const auto& r : res) {
    ps += r.prefill_s; ds += r.decode_s; steps += r.steps;
    best_p = std::max(best_p, B * I / r.prefill_s);
    if (r.decode_s > 0) best_d = std::max(best_d, B * r.steps / r.decode_s);
  }
  const int n = static_cast<int>(res.size());
  char buf[4096];
  std::string iters_json;
  for (size_t i = 0; i < res.size(); ++i) {
    snprintf(buf, sizeof buf, "%s{\"prefill_seconds\": %.9f, \"decode_seconds\": %.9f, \"decode_steps\": %d}",
             i ? ", " : "", res[i].prefill_s, res[i].decode_s, res[i].steps);
    iters_json += buf;
  }
  snprintf(buf, sizeof buf,
           "{\n  \"engine\": \"llama.cpp (llama.h, %s threadpool)\",\n"
           "  \"prefill_tokens_per_second\": %.6f,\n  \"decode_tokens_per_second\": %.6f,\n"
           "  \"avg_latency_seconds\": %.9f,\n  \"batch_size\": %d,\n  \"input_len\": %d,\n"
           "  \"output_len\": %d,\n  \"threads\": %d,\n  \"num_iters\": %d,\n"
           "  \"prefill_tokens_per_second_best_iter\": %.6f,\n"
           "  \"decode_tokens_per_second_best_iter\": %.6f,\n"
           "  \"prefill_seconds_avg\": %.9f,\n  \"decode_seconds_avg\": %.9f,\n"
           "  \"decode_step_seconds_avg\": %.9f,\n  \"iterations\": [%s],\n"
           "  \"threadpool\": \"%s\",\n  \"n_ctx\": %u,\n  \"n_batch\": %u,\n"
           "  \"model_load_seconds\": %.3f,\n  \"system_info\": \"%s\"\n}\n",
           threadpool_mode.c_str(), B * I * n / ps, ds > 0 ? B * steps / ds : 0.0, (ps + ds) / n, B, I,
           O, threads, n, best_p, best_d, ps / n, ds / n, steps ? ds / steps : 0.0,
           iters_json.c_str(), threadpool_mode.c_str(), llama_n_ctx(ctx), llama_n_batch(ctx), load_s,
           llama_print_system_info());
  fputs(buf, stdout);
  if (!json_path.empty()) {
    FILE* f = fopen(json_path.c_str(), "w");
    if (f) { fputs(buf, f); fclose(f); }
  }
  llama_batch_free(batch);
  llama_free(ctx);
  if (tp) tp_free(tp);
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
