// `wasmq groups list|describe`: clients of the admin API's consumer-group endpoints
// (--admin, default http://localhost:9094).
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `groups` to `app`; the handlers set `exit_code`.
void add_group_commands(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
