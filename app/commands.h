// The subcommands of the `moeserve` binary. Each registers its flags on the CLI11 app and returns
// the action to run after parsing. app/ is the composition root: the only place that parses
// flags and picks a backend.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace moe::app {

// An action returns the process exit code.
using Action = std::function<int()>;

Action RegisterGenerateModel(CLI::App& app);
Action RegisterLogits(CLI::App& app);
Action RegisterRun(CLI::App& app);
Action RegisterServe(CLI::App& app);
Action RegisterDashboard(CLI::App& app);
Action RegisterTokenize(CLI::App& app);
Action RegisterDetokenize(CLI::App& app);
// Subcommands of `moeserve bench`.
Action RegisterBenchThroughput(CLI::App& bench);
Action RegisterBenchLatency(CLI::App& bench);
Action RegisterBenchServe(CLI::App& bench);

}  // namespace moe::app
