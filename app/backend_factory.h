// Backend selection: the one place that knows every backend implementation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace moe::app {

struct BackendChoice {
  std::string name = "auto";  // auto | cpu | reference (| cuda when built)
  int threads = 0;            // CPU backends: 0 = physical cores
  std::string isa = "auto";   // CPU backend kernel set
};

StatusOr<std::unique_ptr<engine::Backend>> CreateBackend(const BackendChoice& choice);
std::vector<std::string> BackendChoices();  // for flag validation, incl. "auto"
std::string BackendNames();                 // "cpu | reference"

// Physical cores of this machine (hardware threads / threads per core), at least 1.
int PhysicalCores();

}  // namespace moe::app
