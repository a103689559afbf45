// moeserve: serve, run and measure Mixture-of-Experts language models.
#include <iostream>

#include "app/commands.h"
#include "core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"moeserve: a serving system for Mixture-of-Experts language models"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug | info | warning | error | off")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "off"}));

  // Each Register* adds one subcommand to `parent` and returns its action.
  std::vector<std::pair<CLI::App*, moe::app::Action>> commands;
  auto add_to = [&](CLI::App& parent, moe::app::Action action) {
    commands.emplace_back(parent.get_subcommands({}).back(), std::move(action));
  };
  auto add = [&](moe::app::Action action) { add_to(app, std::move(action)); };
  add(moe::app::RegisterGenerateModel(app));
  add(moe::app::RegisterLogits(app));
  add(moe::app::RegisterRun(app));
  add(moe::app::RegisterServe(app));
  add(moe::app::RegisterDashboard(app));
  add(moe::app::RegisterTokenize(app));
  add(moe::app::RegisterDetokenize(app));
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: offline throughput and latency");
  bench->require_subcommand(1);
  add_to(*bench, moe::app::RegisterBenchThroughput(*bench));
  add_to(*bench, moe::app::RegisterBenchLatency(*bench));
  add_to(*bench, moe::app::RegisterBenchServe(*bench));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  moe::LogLevel level;
  if (moe::ParseLogLevel(log_level.c_str(), &level)) moe::SetLogLevel(level);
  for (auto& [cmd, action] : commands) {
    if (cmd->parsed()) return action();
  }
  return 2;
}
