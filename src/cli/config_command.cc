#include "cli/config_command.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli/config.h"
#include "common/json_text.h"

namespace wasmq::cli {
namespace {

struct CheckOptions {
  std::string file;
  bool print_effective = false;
};

int check(const CheckOptions& o) {
  auto loaded = load_config(o.file);
  if (!loaded.is_ok()) {
    std::cerr << "error: " << loaded.status().message() << "\n";
    return 1;
  }
  for (const auto& warning : loaded->warnings) std::cerr << "warning: " << warning << "\n";
  std::cout << o.file << ": ok\n";
  if (o.print_effective) {
    std::cout << json_text(effective_config_json(loaded->config)) << "\n";
  }
  return 0;
}

}  // namespace

void add_config_command(CLI::App& app, int& exit_code) {
  CLI::App* config_cmd = app.add_subcommand("config", "configuration files");
  config_cmd->require_subcommand(1);
  auto o = std::make_shared<CheckOptions>();
  CLI::App* check_cmd = config_cmd->add_subcommand(
      "check", "load and check a configuration file (with WASMQ_* overrides) without starting");
  check_cmd->add_option("file", o->file, "the TOML file")->required();
  check_cmd->add_flag("--print-effective", o->print_effective,
                      "also print the effective configuration as JSON (secrets redacted)");
  check_cmd->callback([o, &exit_code] { exit_code = check(*o); });
}

}  // namespace wasmq::cli
