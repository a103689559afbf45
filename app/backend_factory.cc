#include "app/backend_factory.h"

#include <fstream>
#include <set>
#include <thread>

#include "engine/cpu/reference_backend.h"

namespace moe::app {

int PhysicalCores() {
  // Count distinct (physical id, core id) pairs; fall back to hardware threads.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, physical = "0";
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "physical id") physical = value;
    if (key == "core id") cores.emplace(physical, value);
  }
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (cores.empty()) return std::max(1, hw);
  return std::max(1, static_cast<int>(cores.size()));
}

std::vector<std::string> BackendChoices() { return {"auto", "reference", "null"}; }
std::string BackendNames() { return "reference | null"; }

StatusOr<std::unique_ptr<engine::Backend>> CreateBackend(const BackendChoice& choice) {
  const int threads = choice.threads > 0 ? choice.threads : PhysicalCores();
  if (choice.name == "auto" || choice.name == "reference") {
    return std::unique_ptr<engine::Backend>(new engine::cpu::ReferenceBackend(threads));
  }
  return InvalidArgument("--backend: unknown backend '", choice.name, "'; choose auto | ",
                         BackendNames());
}

}  // namespace moe::app
