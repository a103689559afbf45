// Workload generation: --random-range-ratio length bounds, special ids never drawn, shared
// prefixes, clustered prompts inside their vocabulary range, trace and text files.
#include "bench/serve/workload.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "tests/testing/test_models.h"

namespace moe::bench {
namespace {

ModelFacts Facts() {
  ModelFacts f;
  f.vocab_size = 512;
  f.eos_token_ids = {2};
  f.bos_token_id = 1;
  f.max_context = 4096;
  return f;
}

TEST(WorkloadTest, RangeRatioBounds) {
  EXPECT_EQ(RangeRatioBounds(100, 0.5), std::make_pair(50, 150));
  EXPECT_EQ(RangeRatioBounds(128, 0.0), std::make_pair(128, 128));
  EXPECT_EQ(RangeRatioBounds(10, 0.25), std::make_pair(7, 13));  // floor(7.5), ceil(12.5)
}

TEST(WorkloadTest, RandomLengthsAreUniformWithinTheRangeRatio) {
  WorkloadOptions o;
  o.num_prompts = 5000;
  o.random_input_len = 100;
  o.random_output_len = 40;
  o.random_range_ratio = 0.5;
  o.seed = 11;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 5000);
  std::set<int> in_seen, out_seen;
  double in_sum = 0, out_sum = 0;
  for (const RequestSpec& s : w->specs()) {
    ASSERT_GE(s.prompt_len, 50);
    ASSERT_LE(s.prompt_len, 150);
    ASSERT_GE(s.output_len, 20);
    ASSERT_LE(s.output_len, 60);
    EXPECT_TRUE(s.ignore_eos);
    in_seen.insert(s.prompt_len);
    out_seen.insert(s.output_len);
    in_sum += s.prompt_len;
    out_sum += s.output_len;
  }
  // Both ends are reachable and the mean is the nominal length (uniform: std of the mean ~0.4).
  EXPECT_TRUE(in_seen.count(50) && in_seen.count(150));
  EXPECT_TRUE(out_seen.count(20) && out_seen.count(60));
  EXPECT_EQ(in_seen.size(), 101u);
  EXPECT_NEAR(in_sum / 5000, 100, 2.0);
  EXPECT_NEAR(out_sum / 5000, 40, 1.0);
}

TEST(WorkloadTest, FixedLengthsWithoutRangeRatio) {
  WorkloadOptions o;
  o.num_prompts = 50;
  o.random_input_len = 32;
  o.random_output_len = 8;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok());
  std::vector<int32_t> ids;
  for (const RequestSpec& s : w->specs()) {
    EXPECT_EQ(s.prompt_len, 32);
    EXPECT_EQ(s.output_len, 8);
    w->FillPrompt(s, &ids);
    EXPECT_EQ(ids.size(), 32u);
  }
}

TEST(WorkloadTest, RandomTokensFollowVllmAndSkipSpecialIds) {
  WorkloadOptions o;
  o.num_prompts = 200;
  o.random_input_len = 600;  // longer than the vocabulary: wraps around
  o.random_prefix_len = 16;
  o.seed = 2;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok());
  const std::vector<int32_t>& allowed = w->allowed_tokens();
  ASSERT_EQ(allowed.size(), 510u);  // 512 minus bos (1) and eos (2)
  std::vector<int32_t> first, ids;
  for (int i = 0; i < w->size(); ++i) {
    const RequestSpec& s = w->spec(i);
    w->FillPrompt(s, &ids);
    ASSERT_EQ(static_cast<int>(ids.size()), s.prompt_len);
    EXPECT_EQ(s.prompt_len, 616);
    for (int32_t t : ids) {
      ASSERT_NE(t, 1);
      ASSERT_NE(t, 2);
      ASSERT_GE(t, 0);
      ASSERT_LT(t, 512);
    }
    // The shared prefix, then allowed[(offset + j) mod |allowed|].
    if (i == 0) first = ids;
    EXPECT_TRUE(std::equal(ids.begin(), ids.begin() + 16, first.begin()));
    const auto pos = std::find(allowed.begin(), allowed.end(), ids[16]) - allowed.begin();
    for (int j = 0; j < 600; ++j) ASSERT_EQ(ids[16 + j], allowed[(pos + j) % allowed.size()]);
  }
  // Deterministic per seed.
  auto again = BuildWorkload(o, Facts(), nullptr);
  std::vector<int32_t> a, b;
  w->FillPrompt(w->spec(7), &a);
  again->FillPrompt(again->spec(7), &b);
  EXPECT_EQ(a, b);
}

TEST(WorkloadTest, ClusteredPromptsStayInTheirVocabularyRange) {
  ModelFacts f = Facts();
  f.expert_clusters = 4;
  WorkloadOptions o;
  o.dataset_name = "clustered";
  o.num_prompts = 400;
  o.random_input_len = 64;
  o.random_output_len = 4;
  o.cluster_weights = {1, 0, 3, 0};
  auto w = BuildWorkload(o, f, nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->num_clusters(), 4);
  int count[4] = {0, 0, 0, 0};
  std::vector<int32_t> ids;
  for (const RequestSpec& s : w->specs()) {
    ASSERT_GE(s.cluster, 0);
    ASSERT_LT(s.cluster, 4);
    ++count[s.cluster];
    w->FillPrompt(s, &ids);
    ASSERT_EQ(ids.size(), 64u);
    for (int32_t t : ids) {
      ASSERT_GE(t, s.cluster * 128);
      ASSERT_LT(t, (s.cluster + 1) * 128);
      ASSERT_NE(t, 1);
      ASSERT_NE(t, 2);
    }
  }
  EXPECT_EQ(count[1], 0);
  EXPECT_EQ(count[3], 0);
  EXPECT_NEAR(count[2] / 400.0, 0.75, 0.07);
  // Without clusters in the model and no --num-clusters: a clear error.
  EXPECT_FALSE(BuildWorkload(o, Facts(), nullptr).ok());
  o.cluster_weights = {1, 1};
  EXPECT_FALSE(BuildWorkload(o, f, nullptr).ok());  // 2 weights for 4 clusters
}

TEST(WorkloadTest, TraceReplaySharesHashBlocks) {
  const std::string dir = moe::testing::MakeScratchDir("trace");
  const std::string path = dir + "/trace.jsonl";
  {
    std::ofstream out(path);
    out << R"({"timestamp": 1000, "input_length": 20, "output_length": 5, "hash_ids": [7, 8]})"
        << "\n"
        << R"({"timestamp": 1500, "input_length": 25, "output_length": 3, "hash_ids": [7, 9, 4]})"
        << "\n\n"
        << R"({"timestamp": 1200, "input_length": 12, "output_length": 2})"
        << "\n";
  }
  WorkloadOptions o;
  o.dataset_name = "trace";
  o.dataset_path = path;
  o.num_prompts = 0;  // the whole file
  o.trace_block_size = 10;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w->is_trace());
  ASSERT_EQ(w->size(), 3);
  // Sorted by time, relative to the first line's timestamp.
  EXPECT_DOUBLE_EQ(w->spec(0).timestamp_s, 0.0);
  EXPECT_DOUBLE_EQ(w->spec(1).timestamp_s, 0.2);
  EXPECT_DOUBLE_EQ(w->spec(2).timestamp_s, 0.5);
  std::vector<int32_t> a, b, c;
  w->FillPrompt(w->spec(0), &a);
  w->FillPrompt(w->spec(2), &b);
  w->FillPrompt(w->spec(1), &c);
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 25u);
  ASSERT_EQ(c.size(), 12u);
  EXPECT_TRUE(std::equal(a.begin(), a.begin() + 10, b.begin()));      // block 7 shared
  EXPECT_FALSE(std::equal(a.begin() + 10, a.end(), b.begin() + 10));  // 8 vs 9
  EXPECT_TRUE(w->spec(0).ignore_eos);
  EXPECT_EQ(w->spec(2).output_len, 3);

  std::ofstream(path) << R"({"timestamp": 0, "output_length": 5})"
                      << "\n";
  auto bad = BuildWorkload(o, Facts(), nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("line 1"), std::string::npos);
}

TEST(WorkloadTest, TextPromptsWithoutTokenizerGoOutAsText) {
  const std::string dir = moe::testing::MakeScratchDir("text");
  const std::string path = dir + "/prompts.txt";
  std::ofstream(path) << "hello there\n\n{\"prompt\": \"json prompt\", \"output_tokens\": 9}\n";
  WorkloadOptions o;
  o.dataset_name = "text";
  o.dataset_path = path;
  o.num_prompts = 5;
  o.custom_output_len = 17;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w->has_text());
  ASSERT_EQ(w->size(), 5);  // two prompts, cycled
  EXPECT_EQ(w->spec(0).text, "hello there");
  EXPECT_EQ(w->spec(0).output_len, 17);
  EXPECT_EQ(w->spec(1).text, "json prompt");
  EXPECT_EQ(w->spec(1).output_len, 9);
  EXPECT_EQ(w->spec(2).text, "hello there");
  EXPECT_FALSE(w->spec(0).ignore_eos);
}

TEST(WorkloadTest, ShareGptFilters) {
  const std::string dir = moe::testing::MakeScratchDir("sharegpt");
  const std::string path = dir + "/sharegpt.json";
  const std::string long_reply(4 * 3000, 'x');  // ~3000 estimated tokens: prompt+output > 2048
  std::ofstream(path) << R"([
    {"conversations": [{"from": "human", "value": "Tell me a long story about a dragon please"},
                       {"from": "gpt", "value": "Once upon a time there was a dragon who"}]},
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello to you"}]},
    {"conversations": [{"from": "human", "value": "Write an essay about the sea"},
                       {"from": "gpt", "value": ")"
                      << long_reply << R"("}]},
    {"conversations": [{"from": "human", "value": "only one turn here"}]}
  ])";
  WorkloadOptions o;
  o.dataset_name = "sharegpt";
  o.dataset_path = path;
  o.num_prompts = 10;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 1);  // "hi" is < 4 tokens, the essay is too long, one has no reply
  EXPECT_EQ(w->spec(0).text, "Tell me a long story about a dragon please");
  EXPECT_EQ(w->spec(0).output_len, 10);  // 39 chars / 4, rounded up
  EXPECT_FALSE(w->spec(0).ignore_eos);
  // A fixed output length lifts the reply-length filters: the essay now fits.
  o.sharegpt_output_len = 32;
  w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 2);
  for (const RequestSpec& s : w->specs()) {
    EXPECT_EQ(s.output_len, 32);
    EXPECT_TRUE(s.ignore_eos);
  }
}

TEST(WorkloadTest, ValidationNamesTheFlag) {
  WorkloadOptions o;
  o.random_range_ratio = 1.0;
  auto w = BuildWorkload(o, Facts(), nullptr);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find("--random-range-ratio"), std::string::npos);
  o = WorkloadOptions();
  o.dataset_name = "sharegpt";
  EXPECT_FALSE(BuildWorkload(o, Facts(), nullptr).ok());  // no --dataset-path
  o = WorkloadOptions();
  o.random_input_len = 4000;
  o.random_output_len = 200;
  w = BuildWorkload(o, Facts(), nullptr);  // 4200 > the 4096 context
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find("context"), std::string::npos);
}

}  // namespace
}  // namespace moe::bench
