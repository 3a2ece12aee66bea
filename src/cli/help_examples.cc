#include "cli/help_examples.h"

#include <CLI/CLI.hpp>
#include <sstream>
#include <string>
#include <utility>

namespace wasmq::cli {
namespace {

// By command path; each line runs as written against `make run`'s broker from the checkout.
constexpr std::pair<const char*, const char*> kExamples[] = {
    {"transform run",
     "wasmq transform run --module build/modules/message_processor.wasm --input "
     "examples/messages.ndjson"},
    {"transform bench",
     "wasmq transform bench --module build/modules/passthrough.wasm --seconds 2 --batch 256"},
    {"config check", "wasmq config check config/broker.toml"},
    {"config reload", "wasmq config reload --admin http://localhost:9094"},
    {"serve", "wasmq serve --config /etc/wasmq/broker.toml"},
    {"module deploy",
     "wasmq module deploy build/modules/message_processor.wasm --name message-processor "
     "--version 1.0.0"},
    {"module sign",
     "wasmq module sign filter.wasm --name filter --version 1.0.0 --key team.pem > filter.sig"},
    {"module list", "wasmq module list --json"},
    {"module get", "wasmq module get message-processor"},
    {"module delete", "wasmq module delete message-processor-v1.0.0"},
    {"module build", "wasmq module build celsius"},
    {"pipeline apply", "wasmq pipeline apply -f examples/pipelines/quickstart.json"},
    {"pipeline list", "wasmq pipeline list"},
    {"pipeline get", "wasmq pipeline get quickstart > quickstart.json"},
    {"pipeline delete", "wasmq pipeline delete quickstart"},
    {"pipeline start", "wasmq pipeline start quickstart"},
    {"pipeline stop", "wasmq pipeline stop quickstart"},
    {"pipeline status", "wasmq pipeline status quickstart"},
    {"pipeline test", "wasmq pipeline test quickstart --input examples/messages.ndjson"},
    {"status", "wasmq status --admin http://localhost:9094"},
    {"metrics", "wasmq metrics --prometheus | grep wasmq_etl_pipeline"},
    {"pool stats", "wasmq pool stats --json"},
    {"pool warmup", "wasmq pool warmup message-processor -n 10"},
    {"pool cleanup", "wasmq pool cleanup message-processor"},
    {"pool resize", "wasmq pool resize message-processor --max-pool-size 30 --warmup-instances 8"},
    {"groups list", "wasmq groups list"},
    {"groups describe", "wasmq groups describe my-group"},
};

// The command at `path` ("pipeline apply"), or null.
CLI::App* find(CLI::App& app, const std::string& path) {
  std::istringstream words(path);
  CLI::App* at = &app;
  for (std::string word; words >> word;) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : at->get_subcommands({})) {
      if (sub->get_name() == word) next = sub;
    }
    if (next == nullptr) return nullptr;
    at = next;
  }
  return at;
}

}  // namespace

void add_help_examples(CLI::App& app) {
  for (const auto& [path, example] : kExamples) {
    CLI::App* cmd = find(app, path);
    if (cmd == nullptr) continue;
    const std::string footer = cmd->get_footer();
    if (footer.find("Example: ") != std::string::npos) continue;
    cmd->footer(footer.empty() ? std::string("Example: ") + example
                               : footer + "\nExample: " + example);
  }
}

}  // namespace wasmq::cli
