// `wasmq pool stats|warmup|cleanup|resize`: clients of the admin API's instance-pool endpoints
// (--admin, default http://localhost:9094).
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds `pool` to `app`; the handlers set `exit_code`.
void add_pool_commands(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
