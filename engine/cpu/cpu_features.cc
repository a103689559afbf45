#include "engine/cpu/cpu_features.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace moe::engine::cpu {

std::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAuto:
      return "auto";
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512Bf16:
      return "avx512bf16";
  }
  return "?";
}

StatusOr<CpuIsa> ParseCpuIsa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kAuto, CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512Bf16}) {
    if (name == CpuIsaName(isa)) return isa;
  }
  return InvalidArgument("unknown CPU ISA '", name, "'; known: auto, avx512bf16, avx2, scalar");
}

bool CpuSupports(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kAuto:
    case CpuIsa::kScalar:
      return true;
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case CpuIsa::kAvx512Bf16:
      // libgcc checks that the OS saves the ZMM state (XCR0) before reporting avx512 features.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
  return false;
#else
  return isa == CpuIsa::kAuto || isa == CpuIsa::kScalar;
#endif
}

CpuIsa DetectCpuIsa() {
  if (CpuSupports(CpuIsa::kAvx512Bf16)) return CpuIsa::kAvx512Bf16;
  if (CpuSupports(CpuIsa::kAvx2)) return CpuIsa::kAvx2;
  return CpuIsa::kScalar;
}

StatusOr<CpuIsa> ResolveCpuIsa(CpuIsa requested) {
  if (requested == CpuIsa::kAuto) return DetectCpuIsa();
  if (!CpuSupports(requested)) {
    return InvalidArgument("this CPU does not support the '", CpuIsaName(requested),
                           "' kernels (best available: ", CpuIsaName(DetectCpuIsa()), ")");
  }
  return requested;
}

int PhysicalCoreCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
  }
  // Count distinct (package, core) pairs among the CPUs we may run on.
  std::set<std::pair<int, int>> cores;
  int allowed = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    ++allowed;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream core_file(base + "core_id");
    std::ifstream package_file(base + "physical_package_id");
    int core = -1;
    int package = 0;
    if (!(core_file >> core)) {
      cores.emplace(-1, c);  // topology unknown: count the CPU itself
      continue;
    }
    package_file >> package;
    cores.emplace(package, core);
  }
  if (allowed == 0) return 1;
  return static_cast<int>(cores.size());
}

}  // namespace moe::engine::cpu
