// Test fixtures shared by every test binary: random-weight model directories generated once per
// process into a temporary directory, and a scratch-directory helper.
#pragma once

#include <string>

#include "model/model_config.h"

namespace moe::testing {

// A directory holding the given preset generated with `seed` (cached per process).
const std::string& PresetModelDir(const std::string& preset, uint64_t seed = 0,
                                  int num_clusters = 0);

// A fresh empty directory under the test temp dir, unique per call.
std::string MakeScratchDir(const std::string& name);

}  // namespace moe::testing
