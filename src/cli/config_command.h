// `wasmq config check FILE`: loads and checks a configuration file without starting anything.
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `config` and its `check` subcommand to `app`. `check` prints "FILE: ok" on stdout (and
// each warning on stderr) and sets `exit_code` to 0, or prints the one-line error on stderr and
// sets it to 1. Environment overrides (WASMQ_*) apply, as they would at start.
void add_config_command(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
