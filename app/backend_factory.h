// Backend selection: the one place that knows every backend implementation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace moe::app {

struct BackendChoice {
  std::string name = "auto";  // auto | cpu | reference | null (| cuda when built)
  int threads = 0;            // CPU backends: 0 = physical cores
  std::string isa = "auto";   // CPU backend kernel set
  // CUDA: batch-invariant kernels (fixed reduction orders, no cuBLAS), and which grouped GEMM the
  // MoE layers use (the cuBLAS baseline until the custom kernel is verified on a GPU).
  bool deterministic = false;
  std::string grouped_gemm = "cublas";  // cublas | custom
};

StatusOr<std::unique_ptr<engine::Backend>> CreateBackend(const BackendChoice& choice);
std::vector<std::string> BackendChoices();  // for flag validation, incl. "auto"
std::string BackendNames();                 // "cpu | reference"

}  // namespace moe::app
