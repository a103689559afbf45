// Sampler: vLLM's order of operations (min-tokens suppression, repetition / presence / frequency
// penalties, then greedy or temperature -> min-p -> top-k -> top-p -> a draw keyed by
// (seed, position)), and raw logprobs. Candidate sets are checked exactly by sampling many
// positions and collecting the support; distributions by a chi-square statistic with a fixed seed.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <vector>

namespace moe::engine {
namespace {

using batching::SamplingParams;

constexpr uint64_t kSeed = 0x5eed;

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.f;
  return p;
}

SamplingParams Temperature(float t) {
  SamplingParams p;
  p.temperature = t;
  return p;
}

// Logits whose softmax (at temperature 1) is exactly proportional to `probs`.
std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

struct Call {
  std::vector<int32_t> prompt, output, stop_tokens;
};

scheduler::SampleOutput SampleOnce(Sampler& s, const std::vector<float>& logits,
                                   const SamplingParams& p, int64_t position, uint64_t seed = kSeed,
                                   const Call& c = {}) {
  SampleRequest r;
  r.logits = logits.data();
  r.params = &p;
  r.seed = seed;
  r.position = position;
  r.prompt = c.prompt;
  r.output = c.output;
  r.stop_tokens = c.stop_tokens;
  return s.Sample(r);
}

int32_t Token(const std::vector<float>& logits, const SamplingParams& p, const Call& c = {},
              int64_t position = 0) {
  Sampler s(static_cast<int>(logits.size()));
  return SampleOnce(s, logits, p, position, kSeed, c).token;
}

// Token counts over positions [0, n).
std::vector<int> Histogram(const std::vector<float>& logits, const SamplingParams& p, int n,
                           uint64_t seed = kSeed) {
  Sampler s(static_cast<int>(logits.size()));
  std::vector<int> counts(logits.size(), 0);
  for (int pos = 0; pos < n; ++pos) {
    const int32_t t = SampleOnce(s, logits, p, pos, seed).token;
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<int>(logits.size()));
    ++counts[t];
  }
  return counts;
}

std::set<int32_t> Support(const std::vector<float>& logits, const SamplingParams& p, int n = 4000) {
  const std::vector<int> counts = Histogram(logits, p, n);
  std::set<int32_t> support;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) support.insert(static_cast<int32_t>(i));
  }
  return support;
}

std::vector<double> Softmax(const std::vector<float>& logits, double temperature = 1.0) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  double sum = 0;
  for (float l : logits) {
    p.push_back(std::exp((l - mx) / temperature));
    sum += p.back();
  }
  for (double& x : p) x /= sum;
  return p;
}

double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = n * probs[i];
    if (e == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

// ---------------------------------------------------------------------------------------------
// Greedy

TEST(SamplerGreedy, ArgmaxWithTiesToTheLowerId) {
  EXPECT_EQ(Token({0.1f, 3.f, -2.f, 2.9f}, Greedy()), 1);
  EXPECT_EQ(Token({1.f, 3.f, 3.f, 2.f}, Greedy()), 1);
  EXPECT_EQ(Token({5.f, 5.f}, Greedy()), 0);
  EXPECT_EQ(Token({-5.f, -4.f, -4.f}, Greedy()), 1);
  EXPECT_EQ(Token({-1.f, -1.f, 0.f}, Greedy()), 2);
}

TEST(SamplerGreedy, IndependentOfSeedAndPosition) {
  const std::vector<float> logits = {0.5f, 0.4f, 0.6f, 0.1f};
  Sampler s(4);
  for (uint64_t seed : {0ull, 1ull, 99ull}) {
    for (int64_t pos : {0, 7, 1000}) EXPECT_EQ(SampleOnce(s, logits, Greedy(), pos, seed).token, 2);
  }
}

// ---------------------------------------------------------------------------------------------
// The draw

TEST(SamplerUniform, DeterministicInRangeAndUniform) {
  constexpr int kN = 200000, kBins = 20;
  std::vector<int> bins(kBins, 0);
  double mean = 0;
  for (int pos = 0; pos < kN; ++pos) {
    const double u = Sampler::Uniform(kSeed, pos);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ASSERT_EQ(u, Sampler::Uniform(kSeed, pos));
    ++bins[static_cast<int>(u * kBins)];
    mean += u;
  }
  EXPECT_NEAR(mean / kN, 0.5, 0.005);
  // Chi-square with 19 degrees of freedom: 50 is far beyond p = 1e-4.
  EXPECT_LT(ChiSquare(bins, std::vector<double>(kBins, 1.0 / kBins)), 50.0);
}

TEST(SamplerUniform, DependsOnSeedAndPosition) {
  EXPECT_NE(Sampler::Uniform(1, 0), Sampler::Uniform(2, 0));
  EXPECT_NE(Sampler::Uniform(1, 0), Sampler::Uniform(1, 1));
  // Neighbouring seeds are not shifted copies of each other.
  int same = 0;
  for (int pos = 0; pos < 1000; ++pos) {
    same += Sampler::Uniform(7, pos) == Sampler::Uniform(8, pos + 1) ? 1 : 0;
  }
  EXPECT_EQ(same, 0);
}

TEST(SamplerDraw, IsTheInverseCdfOfTheUniformOverTokenIds) {
  // Unfiltered sampling walks the candidates in id order: token = first t with cdf(t) > u.
  const std::vector<float> logits = {0.3f, -1.f, 1.2f, 0.f, 0.7f, -0.4f};
  const std::vector<double> probs = Softmax(logits, 0.8);
  Sampler s(6);
  int checked = 0;
  for (int pos = 0; pos < 2000; ++pos) {
    const double u = Sampler::Uniform(kSeed, pos);
    double cdf = 0;
    int32_t want = 5;
    bool near_edge = false;
    for (int t = 0; t < 6; ++t) {
      cdf += probs[t];
      near_edge |= std::abs(cdf - u) < 1e-5;
      if (cdf > u) {
        want = t;
        break;
      }
    }
    if (near_edge) continue;
    ASSERT_EQ(SampleOnce(s, logits, Temperature(0.8f), pos).token, want) << "position " << pos;
    ++checked;
  }
  EXPECT_GT(checked, 1990);
}

TEST(SamplerDraw, SameSeedPositionAndLogitsGiveTheSameToken) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.7f) * 2.f;
  SamplingParams p = Temperature(1.3f);
  p.top_k = 20;
  p.top_p = 0.9f;
  SamplingParams noisy = Temperature(0.5f);  // interleaved calls with other settings
  noisy.repetition_penalty = 1.5f;
  noisy.frequency_penalty = 0.5f;
  Sampler a(50), b(50);
  Call history{{1, 2, 3}, {4, 4, 5}, {}};
  std::vector<int32_t> first;
  for (int pos = 0; pos < 200; ++pos) first.push_back(SampleOnce(a, logits, p, pos).token);
  for (int pos = 199; pos >= 0; --pos) {
    SampleOnce(b, logits, noisy, pos, 1234, history);
    EXPECT_EQ(SampleOnce(b, logits, p, pos).token, first[pos]) << "position " << pos;
  }
  // A different seed gives a different sequence.
  int differ = 0;
  for (int pos = 0; pos < 200; ++pos) {
    differ += SampleOnce(a, logits, p, pos, kSeed + 1).token != first[pos] ? 1 : 0;
  }
  EXPECT_GT(differ, 50);
}

// ---------------------------------------------------------------------------------------------
// Temperature

TEST(SamplerTemperature, FrequenciesMatchSoftmax) {
  const std::vector<float> logits = {0.f, 1.f, 2.f, 0.5f, -1.f, 1.5f};
  constexpr int kN = 100000;
  for (float t : {1.0f, 0.5f, 2.0f}) {
    const std::vector<int> counts = Histogram(logits, Temperature(t), kN);
    // 5 degrees of freedom: 30 is beyond p = 2e-5 for a correct sampler; a wrong temperature
    // gives thousands.
    EXPECT_LT(ChiSquare(counts, Softmax(logits, t)), 30.0) << "temperature " << t;
  }
}

TEST(SamplerTemperature, WrongTemperatureIsDetected) {
  // The statistic used above separates temperatures 1 and 1.2 clearly.
  const std::vector<float> logits = {0.f, 1.f, 2.f, 0.5f, -1.f, 1.5f};
  const std::vector<int> counts = Histogram(logits, Temperature(1.2f), 100000);
  EXPECT_GT(ChiSquare(counts, Softmax(logits, 1.0)), 300.0);
}

TEST(SamplerTemperature, VeryLowTemperatureIsAlmostGreedy) {
  const std::vector<float> logits = {1.f, 3.f, 2.9f};
  EXPECT_EQ(Support(logits, Temperature(0.01f), 2000), (std::set<int32_t>{1}));
}

// ---------------------------------------------------------------------------------------------
// Filters: exact candidate sets

TEST(SamplerFilters, TopKKeepsTheKMostLikely) {
  const std::vector<float> logits = {0.1f, 2.f, -1.f, 1.5f, 0.7f, 1.9f, -3.f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.top_k = 3;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1, 5, 3}));
  p.top_k = 1;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1}));
  p.top_k = 8;
  EXPECT_EQ(Support(logits, p, 20000).size(), 8u);
  p.top_k = 100;  // more than the vocabulary
  EXPECT_EQ(Support(logits, p, 20000).size(), 8u);
  p.top_k = -1;  // off
  EXPECT_EQ(Support(logits, p, 20000).size(), 8u);
}

TEST(SamplerFilters, TopKRenormalizesOverTheKept) {
  const std::vector<float> logits = {0.1f, 2.f, -1.f, 1.5f, 0.7f, 1.9f, -3.f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.top_k = 3;
  std::vector<double> probs = Softmax(logits);
  const double kept = probs[1] + probs[3] + probs[5];
  for (size_t i = 0; i < probs.size(); ++i) {
    probs[i] = (i == 1 || i == 3 || i == 5) ? probs[i] / kept : 0.0;
  }
  EXPECT_LT(ChiSquare(Histogram(logits, p, 60000), probs), 20.0);
}

TEST(SamplerFilters, TopKTiesBreakTowardTheLowerId) {
  const std::vector<float> logits = {1.f, 2.f, 2.f, 2.f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.top_k = 2;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1, 2}));
}

TEST(SamplerFilters, TopPIncludesTheCrossingToken) {
  const std::vector<float> logits = LogitsOf({0.1, 0.4, 0.2, 0.3});  // sorted: 1, 3, 2, 0
  SamplingParams p = Temperature(1.f);
  p.top_p = 0.35f;  // 0.4 crosses
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1}));
  p.top_p = 0.65f;  // 0.4 + 0.3 = 0.7 crosses
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1, 3}));
  p.top_p = 0.75f;  // 0.9 crosses
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{1, 3, 2}));
  p.top_p = 0.95f;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1, 2, 3}));
  p.top_p = 1.f;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1, 2, 3}));
}

TEST(SamplerFilters, TopPOverALargeVocabulary) {
  // Beyond the first 64 sorted candidates: the nucleus is the 100 most likely of 1000.
  std::vector<double> probs(1000);
  for (int i = 0; i < 1000; ++i) probs[i] = i % 10 == 0 ? 0.0099 : 0.01 / 9000.0;
  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  for (double& x : probs) x /= total;
  double head = 0;
  for (int i = 0; i < 1000; i += 10) head += probs[i];
  SamplingParams p = Temperature(1.f);
  p.top_p = static_cast<float>(head - probs[0] / 2);  // crossed by the 100th head token
  std::set<int32_t> want;
  for (int i = 0; i < 1000; i += 10) want.insert(i);
  EXPECT_EQ(Support(LogitsOf(probs), p, 20000), want);
}

TEST(SamplerFilters, MinPKeepsTokensAtLeastMinPTimesTheMax) {
  const std::vector<float> logits = LogitsOf({0.4, 0.3, 0.2, 0.1});
  SamplingParams p = Temperature(1.f);
  p.min_p = 0.6f;  // threshold 0.24
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1}));
  p.min_p = 0.4f;  // threshold 0.16
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1, 2}));
  p.min_p = 0.2f;  // threshold 0.08
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1, 2, 3}));
  p.min_p = 1.f;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0}));
}

TEST(SamplerFilters, MinPKeepsTokensExactlyAtTheThreshold) {
  const std::vector<float> logits = {1.f, 1.f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.min_p = 1.f;  // threshold = the max probability, which two tokens share
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1}));
}

TEST(SamplerFilters, MinPUsesTheTemperatureScaledDistribution) {
  // At temperature 0.5 the probabilities are proportional to p^2: 0.16, 0.09, 0.04, 0.01 of
  // 0.30 -> max 0.533, and min_p 0.3 keeps p^2 >= 0.048 of the total: tokens 0 and 1.
  const std::vector<float> logits = LogitsOf({0.4, 0.3, 0.2, 0.1});
  SamplingParams p = Temperature(0.5f);
  p.min_p = 0.3f;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0, 1}));
}

// vLLM (apply_top_k_top_p) and Hugging Face (TopKLogitsWarper then TopPLogitsWarper) both take
// the top-p mass over the distribution renormalized after min-p and top-k.
TEST(SamplerFilters, TopPAppliesToTheDistributionLeftByTopK) {
  const std::vector<float> logits = LogitsOf({0.5, 0.3, 0.2});
  SamplingParams p = Temperature(1.f);
  p.top_k = 2;     // keeps 0.5, 0.3 -> renormalized 0.625, 0.375
  p.top_p = 0.6f;  // 0.625 crosses 0.6 alone
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0}));
}

TEST(SamplerFilters, TopPAppliesToTheDistributionLeftByMinP) {
  const std::vector<float> logits = LogitsOf({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = Temperature(1.f);
  p.min_p = 0.5f;  // threshold 0.25 keeps 0.5, 0.3 -> renormalized 0.625, 0.375
  p.top_p = 0.6f;
  EXPECT_EQ(Support(logits, p), (std::set<int32_t>{0}));
}

// ---------------------------------------------------------------------------------------------
// Penalties (observed through greedy decisions placed on either side of the exact threshold)

TEST(SamplerPenalties, RepetitionDividesPositiveLogits) {
  const std::vector<float> logits = {3.f, 2.f};  // 3 / r < 2 exactly when r > 1.5
  SamplingParams p = Greedy();
  Call c{{0}, {}, {}};
  p.repetition_penalty = 1.45f;
  EXPECT_EQ(Token(logits, p, c), 0);
  p.repetition_penalty = 1.55f;
  EXPECT_EQ(Token(logits, p, c), 1);
}

TEST(SamplerPenalties, RepetitionMultipliesNegativeLogits) {
  const std::vector<float> logits = {-1.f, -1.5f};  // -1 * r < -1.5 exactly when r > 1.5
  SamplingParams p = Greedy();
  Call c{{}, {0}, {}};  // an output token is penalised too
  p.repetition_penalty = 1.45f;
  EXPECT_EQ(Token(logits, p, c), 0);
  p.repetition_penalty = 1.55f;
  EXPECT_EQ(Token(logits, p, c), 1);
}

TEST(SamplerPenalties, RepetitionAppliesOncePerDistinctToken) {
  // Token 0 appears 4 times over prompt and output: penalised once, 3 / 1.5 = 2 > 1.9.
  const std::vector<float> logits = {3.f, 1.9f};
  SamplingParams p = Greedy();
  p.repetition_penalty = 1.5f;
  EXPECT_EQ(Token(logits, p, Call{{0, 0}, {0, 0}, {}}), 0);
  // The same sampler gives the same answer again (its scratch counts were reset).
  Sampler s(2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(SampleOnce(s, logits, p, i, kSeed, Call{{0, 0}, {0, 0}, {}}).token, 0);
  }
}

TEST(SamplerPenalties, RepetitionShapesTheDistributionOfSeenTokensOnly) {
  // Only token 0 was seen: {1, 0.5, 0} becomes {1 / 1.5, 0.5, 0}.
  const std::vector<float> logits = {1.f, 0.5f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.repetition_penalty = 1.5f;
  Sampler s(3);
  std::vector<int> counts(3, 0);
  for (int pos = 0; pos < 60000; ++pos) {
    ++counts[SampleOnce(s, logits, p, pos, kSeed, Call{{0}, {}, {}}).token];
  }
  EXPECT_LT(ChiSquare(counts, Softmax({1.f / 1.5f, 0.5f, 0.f})), 20.0);
}

TEST(SamplerPenalties, RepetitionBelowOneEncouragesRepeats) {
  const std::vector<float> logits = {1.f, 1.5f};  // 1 / 0.6 = 1.67 > 1.5
  SamplingParams p = Greedy();
  p.repetition_penalty = 0.6f;
  EXPECT_EQ(Token(logits, p, Call{{0}, {}, {}}), 0);
}

TEST(SamplerPenalties, PresenceSubtractsOncePerOutputToken) {
  const std::vector<float> logits = {1.f, 0.5f};
  SamplingParams p = Greedy();
  p.presence_penalty = 0.45f;  // 1 - 0.45 = 0.55 > 0.5
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 0, 0}, {}}), 0);
  p.presence_penalty = 0.55f;  // 0.45 < 0.5
  EXPECT_EQ(Token(logits, p, Call{{}, {0}, {}}), 1);
  // Prompt tokens are not penalised.
  p.presence_penalty = 2.f;
  EXPECT_EQ(Token(logits, p, Call{{0, 0}, {}, {}}), 0);
}

TEST(SamplerPenalties, FrequencyScalesWithTheCount) {
  const std::vector<float> logits = {1.f, 0.5f};
  SamplingParams p = Greedy();
  p.frequency_penalty = 0.15f;  // 3 occurrences: 1 - 0.45 = 0.55 > 0.5
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 1, 0, 0}, {}}), 0);
  p.frequency_penalty = 0.2f;  // 1 - 0.6 = 0.4; token 1 (once): 0.5 - 0.2 = 0.3
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 1, 0, 0}, {}}), 0);
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 0, 0}, {}}), 1);
  // Prompt occurrences do not count.
  p.frequency_penalty = 2.f;
  EXPECT_EQ(Token(logits, p, Call{{0, 0, 0}, {}, {}}), 0);
}

TEST(SamplerPenalties, PresenceAndFrequencyAdd) {
  const std::vector<float> logits = {1.f, 0.5f};
  SamplingParams p = Greedy();
  p.presence_penalty = 0.1f;
  p.frequency_penalty = 0.12f;  // 1 - 0.1 - 0.36 = 0.54 > 0.5
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 0, 0}, {}}), 0);
  p.frequency_penalty = 0.14f;  // 1 - 0.1 - 0.42 = 0.48 < 0.5
  EXPECT_EQ(Token(logits, p, Call{{}, {0, 0, 0}, {}}), 1);
}

TEST(SamplerPenalties, NegativePresencePenaltyEncouragesRepeats) {
  const std::vector<float> logits = {1.f, 1.2f};
  SamplingParams p = Greedy();
  p.presence_penalty = -0.3f;
  EXPECT_EQ(Token(logits, p, Call{{}, {0}, {}}), 0);
}

TEST(SamplerPenalties, RepetitionThenPresence) {
  // vLLM order: repetition first (3 / 2 = 1.5), then presence (1.5 - 0.3 = 1.2 < 1.3).
  // The other order would give (3 - 0.3) / 2 = 1.35 > 1.3.
  const std::vector<float> logits = {3.f, 1.3f};
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.f;
  p.presence_penalty = 0.3f;
  EXPECT_EQ(Token(logits, p, Call{{}, {0}, {}}), 1);
}

TEST(SamplerPenalties, PenaltiesApplyBeforeSampling) {
  // Repetition 100 turns token 0's logit 5 into 0.05: top_k 1 then picks token 1.
  const std::vector<float> logits = {5.f, 1.f, 0.f};
  SamplingParams p = Temperature(1.f);
  p.repetition_penalty = 100.f;
  p.top_k = 1;
  Sampler s(3);
  for (int pos = 0; pos < 50; ++pos) {
    EXPECT_EQ(SampleOnce(s, logits, p, pos, kSeed, Call{{0}, {}, {}}).token, 1);
  }
}

// ---------------------------------------------------------------------------------------------
// min_tokens

TEST(SamplerMinTokens, SuppressesStopTokensUntilMinTokens) {
  // Token 1 is an EOS (stop_tokens), token 2 a request stop_token_id.
  const std::vector<float> logits = {0.f, 5.f, 4.f, 1.f};
  SamplingParams p = Greedy();
  p.min_tokens = 2;
  p.stop_token_ids = {2};
  EXPECT_EQ(Token(logits, p, Call{{}, {}, {1}}), 3);
  EXPECT_EQ(Token(logits, p, Call{{}, {3}, {1}}), 3);     // 1 output < 2
  EXPECT_EQ(Token(logits, p, Call{{}, {3, 3}, {1}}), 1);  // 2 outputs: no longer suppressed
  p.min_tokens = 0;
  EXPECT_EQ(Token(logits, p, Call{{}, {}, {1}}), 1);
}

TEST(SamplerMinTokens, SuppressedTokensAreNeverSampled) {
  const std::vector<float> logits = {0.f, 5.f, 4.f, 1.f};
  SamplingParams p = Temperature(1.f);
  p.min_tokens = 1;
  p.stop_token_ids = {2};
  Sampler s(4);
  std::set<int32_t> seen;
  for (int pos = 0; pos < 3000; ++pos) {
    seen.insert(SampleOnce(s, logits, p, pos, kSeed, Call{{}, {}, {1}}).token);
  }
  EXPECT_EQ(seen, (std::set<int32_t>{0, 3}));
}

// ---------------------------------------------------------------------------------------------
// Logprobs

double LogSoftmax(const std::vector<float>& logits, int t) {
  double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(l - mx);
  return logits[t] - mx - std::log(sum);
}

TEST(SamplerLogprobs, RawLogSoftmaxWithExactTopNOrder) {
  const std::vector<float> logits = {0.5f, 2.f, -1.f, 2.f, 1.f, 3.f, 0.5f};
  SamplingParams p = Greedy();
  p.logprobs = 5;
  Sampler s(7);
  const scheduler::SampleOutput out = SampleOnce(s, logits, p, 0);
  EXPECT_EQ(out.token, 5);
  EXPECT_NEAR(out.logprob, LogSoftmax(logits, 5), 1e-5);
  ASSERT_EQ(out.top.size(), 5u);
  // Descending, ties to the lower id: 5 (3), 1 (2), 3 (2), 4 (1), 0 (0.5) before 6 (0.5).
  const int32_t want[] = {5, 1, 3, 4, 0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(out.top[i].token, want[i]) << i;
    EXPECT_NEAR(out.top[i].logprob, LogSoftmax(logits, want[i]), 1e-5) << i;
  }
}

TEST(SamplerLogprobs, IgnorePenaltiesTemperatureAndFilters) {
  const std::vector<float> logits = {1.f, 4.f, 2.f, 0.f};
  SamplingParams p = Temperature(0.3f);
  p.repetition_penalty = 8.f;  // token 1 (prompt) drops to 0.5
  p.presence_penalty = 1.f;
  p.top_k = 1;
  p.logprobs = 2;
  Sampler s(4);
  const scheduler::SampleOutput out = SampleOnce(s, logits, p, 3, kSeed, Call{{1}, {2}, {}});
  // Processed: {1, 0.5, 2/8 - 1 = -0.75, 0}: top-1 is token 0.
  EXPECT_EQ(out.token, 0);
  EXPECT_NEAR(out.logprob, LogSoftmax(logits, 0), 1e-5);
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[0].token, 1);
  EXPECT_NEAR(out.top[0].logprob, LogSoftmax(logits, 1), 1e-5);
  EXPECT_EQ(out.top[1].token, 2);
  EXPECT_NEAR(out.top[1].logprob, LogSoftmax(logits, 2), 1e-5);
}

TEST(SamplerLogprobs, OffByDefaultAndCappedByTheVocabulary) {
  const std::vector<float> logits = {1.f, 2.f, 3.f};
  Sampler s(3);
  const scheduler::SampleOutput off = SampleOnce(s, logits, Greedy(), 0);
  EXPECT_TRUE(off.top.empty());
  SamplingParams p = Greedy();
  p.logprobs = 20;
  const scheduler::SampleOutput all = SampleOnce(s, logits, p, 0);
  ASSERT_EQ(all.top.size(), 3u);
  EXPECT_EQ(all.top[0].token, 2);
  EXPECT_EQ(all.top[2].token, 0);
  double total = 0;
  for (const auto& t : all.top) total += std::exp(t.logprob);
  EXPECT_NEAR(total, 1.0, 1e-5);
}

TEST(SamplerLogprobs, LargeLogitsStayFinite) {
  const std::vector<float> logits = {1000.f, 999.f, -1000.f};
  SamplingParams p = Temperature(1.f);
  p.logprobs = 3;
  Sampler s(3);
  const scheduler::SampleOutput out = SampleOnce(s, logits, p, 0);
  ASSERT_EQ(out.top.size(), 3u);
  EXPECT_NEAR(out.top[0].logprob, -std::log1p(std::exp(-1.0)), 1e-5);
  EXPECT_NEAR(out.top[1].logprob, -1.0 - std::log1p(std::exp(-1.0)), 1e-5);
  EXPECT_TRUE(std::isfinite(out.logprob));
}

}  // namespace
}  // namespace moe::engine
