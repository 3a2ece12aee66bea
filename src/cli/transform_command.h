// `wasmq transform run|bench`: run a module on messages without a broker.
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds the `transform` subcommand and its `run` and `bench` subcommands to `app`. The handlers
// set `exit_code`.
void add_transform_command(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
