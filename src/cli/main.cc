// The wasmq executable: parses the command line and hands over to a subcommand.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "cli/client_commands.h"
#include "cli/config_command.h"
#include "cli/etl_commands.h"
#include "cli/group_commands.h"
#include "cli/help_examples.h"
#include "cli/module_author.h"
#include "cli/pool_commands.h"
#include "cli/serve_command.h"
#include "cli/transform_command.h"
#include "etl/compile_check.h"

namespace {

// The deepest subcommand the command line named (`app` itself when none).
const CLI::App* deepest(const CLI::App* app) {
  for (const CLI::App* sub : app->get_subcommands()) return deepest(sub);
  return app;
}

// A missing or unknown command is answered with the commands there are, e.g.
// `unknown command "lst" for wasmq pipeline; its commands: apply, list, get, ...`.
std::string failure_message(const CLI::App* app, const CLI::Error& e) {
  const CLI::App* at = deepest(app);
  std::string names;
  for (const CLI::App* sub : at->get_subcommands({})) {
    if (!names.empty()) names += ", ";
    names += sub->get_name();
  }
  std::string path;
  for (const CLI::App* a = at; a; a = a->get_parent()) {
    path = (a->get_parent() ? a->get_name() : std::string("wasmq")) + (path.empty() ? "" : " ") + path;
  }
  if (!names.empty()) {
    const auto left = app->remaining(true);
    if (!left.empty() && !left.front().empty() && left.front()[0] != '-') {
      return "error: unknown command \"" + left.front() + "\" for " + path + "; its commands: " +
             names + " (" + path + " --help says more)\n";
    }
    if (at->get_subcommands().empty() && at->get_require_subcommand_min() > 0) {
      return "error: " + path + " needs a command: " + names + " (" + path + " --help says more)\n";
    }
  }
  return CLI::FailureMessage::simple(app, e);
}

}  // namespace

int main(int argc, char** argv) {
  // The broker's bounded compile check of an upload (etl/compile_check.h), not a user command.
  if (argc >= 2 && std::string_view(argv[1]) == wasmq::etl::kCompileCheckCommand) {
    return wasmq::etl::run_compile_check_child(argc, argv);
  }
  // Logs go to stderr: stdout carries command output (NDJSON, JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt("wasmq"));

  CLI::App app{"wasmq: a message broker with a WebAssembly ETL engine"};
  app.set_version_flag("--version", std::string("wasmq ") + WASMQ_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  wasmq::cli::add_transform_command(app, exit_code);
  wasmq::cli::add_config_command(app, exit_code);
  wasmq::cli::add_serve_command(app, exit_code);
  wasmq::cli::add_client_commands(app, exit_code);
  wasmq::cli::add_etl_commands(app, exit_code);
  wasmq::cli::add_module_author_commands(app, exit_code);
  wasmq::cli::add_pool_commands(app, exit_code);
  wasmq::cli::add_group_commands(app, exit_code);
  wasmq::cli::add_help_examples(app);
  app.failure_message(failure_message);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
