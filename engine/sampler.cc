#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"
#include "core/hash.h"

namespace moe::engine {
namespace {

// Descending probability, ties to the lower token id: one total order for every sort here.
struct ByProbability {
  const float* p;
  bool operator()(int32_t a, int32_t b) const { return p[a] > p[b] || (p[a] == p[b] && a < b); }
};

}  // namespace

Sampler::Sampler(int vocab_size) : vocab_(vocab_size), work_(vocab_size), counts_(vocab_size, 0) {
  order_.reserve(vocab_size);
}

double Sampler::Uniform(uint64_t seed, int64_t position) {
  const uint64_t bits =
      Mix64(Mix64(seed ^ 0x5851f42d4c957f2dULL) + static_cast<uint64_t>(position));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

scheduler::SampleOutput Sampler::Sample(const SampleRequest& r) {
  const batching::SamplingParams& p = *r.params;
  const float* raw = r.logits;
  scheduler::SampleOutput out;
  float* w = work_.data();
  std::copy(raw, raw + vocab_, w);

  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (static_cast<int>(r.output.size()) < p.min_tokens) {
    for (int32_t t : r.stop_tokens) w[t] = kNegInf;
    for (int32_t t : p.stop_token_ids) w[t] = kNegInf;
  }
  if (p.repetition_penalty != 1.0f) {
    auto penalise = [&](int32_t t) {
      if (counts_[t] < 0) return;  // already penalised (marked)
      w[t] = w[t] > 0 ? w[t] / p.repetition_penalty : w[t] * p.repetition_penalty;
      counts_[t] = -1;
    };
    for (int32_t t : r.prompt) penalise(t);
    for (int32_t t : r.output) penalise(t);
    for (int32_t t : r.prompt) counts_[t] = 0;
    for (int32_t t : r.output) counts_[t] = 0;
  }
  if (p.presence_penalty != 0.f || p.frequency_penalty != 0.f) {
    for (int32_t t : r.output) ++counts_[t];
    for (int32_t t : r.output) {
      if (counts_[t] > 0) {
        w[t] -= p.frequency_penalty * counts_[t] + p.presence_penalty;
        counts_[t] = 0;
      }
    }
  }

  int32_t token = 0;
  if (p.greedy()) {
    for (int i = 1; i < vocab_; ++i) {
      if (w[i] > w[token]) token = i;
    }
  } else {
    // Probabilities at this temperature.
    float max_logit = kNegInf;
    for (int i = 0; i < vocab_; ++i) max_logit = std::max(max_logit, w[i]);
    const float inv_t = 1.0f / p.temperature;
    double sum = 0;
    for (int i = 0; i < vocab_; ++i) {
      w[i] = std::exp((w[i] - max_logit) * inv_t);
      sum += w[i];
    }
    const float inv_sum = static_cast<float>(1.0 / sum);
    float max_prob = 0.f;
    for (int i = 0; i < vocab_; ++i) {
      w[i] *= inv_sum;
      max_prob = std::max(max_prob, w[i]);
    }
    // Candidates: min-p filter first (cheap, shrinks the sort).
    order_.clear();
    const float min_prob = p.min_p > 0.f ? p.min_p * max_prob : 0.f;
    for (int i = 0; i < vocab_; ++i) {
      if (w[i] > 0.f && w[i] >= min_prob) order_.push_back(i);
    }
    ByProbability cmp{w};
    // Top-k: keep the k most likely candidates (sorted).
    if (p.top_k > 0 && p.top_k < static_cast<int>(order_.size())) {
      std::partial_sort(order_.begin(), order_.begin() + p.top_k, order_.end(), cmp);
      order_.resize(p.top_k);
    }
    // Top-p over the distribution that min-p and top-k left, renormalised (as vLLM and HF do).
    if (p.top_p < 1.f) {
      double kept_total = 0;
      for (int32_t t : order_) kept_total += w[t];
      const double threshold = p.top_p * kept_total;
      const int n = static_cast<int>(order_.size());
      // Sort only as much of the head as the nucleus needs.
      int sorted = std::min(n, 64);
      while (true) {
        std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(), cmp);
        double mass = 0;
        int cut = -1;
        for (int i = 0; i < sorted; ++i) {
          mass += w[order_[i]];
          if (mass >= threshold) {
            cut = i + 1;
            break;
          }
        }
        if (cut > 0 || sorted == n) {
          order_.resize(cut > 0 ? cut : n);
          break;
        }
        sorted = std::min(n, sorted * 4);
      }
    }
    double total = 0;
    for (int32_t t : order_) total += w[t];
    const double target = Uniform(r.seed, r.position) * total;
    double acc = 0;
    token = order_.back();
    for (int32_t t : order_) {
      acc += w[t];
      if (acc > target) {
        token = t;
        break;
      }
    }
  }
  out.token = token;

  if (p.logprobs > 0) {
    double max_raw = raw[0];
    for (int i = 1; i < vocab_; ++i) max_raw = std::max<double>(max_raw, raw[i]);
    double sum = 0;
    for (int i = 0; i < vocab_; ++i) sum += std::exp(raw[i] - max_raw);
    const double lse = max_raw + std::log(sum);
    out.logprob = static_cast<float>(raw[token] - lse);
    order_.resize(vocab_);
    std::iota(order_.begin(), order_.end(), 0);
    const int n = std::min(p.logprobs, vocab_);
    std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), ByProbability{raw});
    for (int i = 0; i < n; ++i) {
      out.top.push_back({order_[i], static_cast<float>(raw[order_[i]] - lse)});
    }
  }
  return out;
}

}  // namespace moe::engine
