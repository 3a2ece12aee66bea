// `wasmq produce TOPIC` and `wasmq consume TOPIC`: clients of the data API.
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `produce` and `consume` to `app`; the handlers set `exit_code`.
void add_client_commands(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
