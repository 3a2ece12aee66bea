// `wasmq transform run|bench`: run a module on messages without a broker. run_transform is also
// what `wasmq module build` runs on a project's samples (module_author.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace wasmq::cli {

// A module to run and the limits of its instances (`transform run|bench` options).
struct ModuleOptions {
  std::string module_path;
  std::string config;  // JSON for init_module; empty: none
  uint32_t timeout_ms = 5000;
  uint64_t memory_limit_bytes = 64ull * 1024 * 1024;
  uint64_t max_output_bytes = 16ull * 1024 * 1024;
};

// What `run_transform` did with the messages of its input.
struct TransformCounts {
  size_t transformed = 0;  // one or more outputs
  size_t filtered = 0;     // no output
  size_t errors = 0;       // a bad input line, a failed call or the module's own error result
};

// `wasmq transform run`: loads the module (a one-line reason on stderr when it cannot), runs it
// on each NDJSON message of `input_path` (stdin when empty or "-") and writes one result line
// per message to stdout. Returns 0, or 1 when the module or the input cannot be read. A message
// the module fails on is a result line, not a failure of the run. Fills `counts` when given.
// Main thread only (it creates a V8 sandbox).
int run_transform(const ModuleOptions& options, const std::string& input_path,
                  TransformCounts* counts = nullptr);

// Adds the `transform` subcommand and its `run` and `bench` subcommands to `app`. The handlers
// set `exit_code`.
void add_transform_command(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
