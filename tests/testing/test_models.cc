#include "tests/testing/test_models.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>

#include <gtest/gtest.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "model/random_model.h"

namespace moe::testing {

std::string MakeScratchDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const std::string dir = absl::StrCat(::testing::TempDir(), "moeserve_", getpid(), "_",
                                       counter.fetch_add(1), "_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

const std::string& PresetModelDir(const std::string& preset, uint64_t seed, int num_clusters) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, uint64_t, int>, std::string> dirs;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(preset, seed, num_clusters);
  auto it = dirs.find(key);
  if (it != dirs.end()) return it->second;
  model::RandomModelOptions options;
  options.preset = preset;
  options.seed = seed;
  options.num_clusters = num_clusters;
  options.out_dir = MakeScratchDir(absl::StrCat(preset, "_", seed, "_", num_clusters));
  const Status status = model::GenerateRandomModel(options);
  MOE_CHECK(status.ok()) << status.message();
  return dirs.emplace(key, options.out_dir).first->second;
}

}  // namespace moe::testing
