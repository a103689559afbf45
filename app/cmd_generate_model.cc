#include <iostream>

#include "absl/strings/str_join.h"
#include "app/commands.h"
#include "core/clock.h"
#include "model/random_model.h"

namespace moe::app {

Action RegisterGenerateModel(CLI::App& app) {
  auto options = std::make_shared<model::RandomModelOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate-model", "Write a deterministic random-weight Hugging Face model directory");
  cmd->add_option("--preset", options->preset,
                  "model size: " + absl::StrJoin(model::PresetNames(), " | "))
      ->required();
  cmd->add_option("--seed", options->seed, "random seed");
  cmd->add_option("--out", options->out_dir, "output directory")->required();
  cmd->add_option("--clusters", options->num_clusters,
                  "expert specialisation: token embeddings around this many centres, router rows "
                  "aligned to them (0 = off)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", options->num_threads, "threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  return [options]() {
    Stopwatch watch;
    const Status status = model::GenerateRandomModel(*options);
    if (!status.ok()) {
      std::cerr << "moeserve generate-model: " << status.message() << "\n";
      return 1;
    }
    std::cerr << "wrote " << options->preset << " model (seed " << options->seed << ") to "
              << options->out_dir << " in " << watch.ElapsedSeconds() << " s\n";
    return 0;
  };
}

}  // namespace moe::app
