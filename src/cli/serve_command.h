// `wasmq serve --config FILE`: the broker.
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `serve` to `app`; the handler sets `exit_code`.
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
