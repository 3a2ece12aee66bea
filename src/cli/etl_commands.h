// `wasmq module deploy|list|get|delete` and `wasmq pipeline apply|list|get|delete|start|stop|
// status|test`: clients of the admin API (--admin, default http://localhost:9094).
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `module` and `pipeline` to `app`; the handlers set `exit_code`.
void add_etl_commands(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
