#include "cli/transform_command.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>

#include "common/json_text.h"
#include "common/message_json.h"
#include "wasm/engine.h"
#include "wasm/sandbox.h"

namespace wasmq::cli {
namespace {

void add_module_options(CLI::App* cmd, ModuleOptions& o) {
  cmd->add_option("--module", o.module_path, "the module (.wasm)")->required();
  cmd->add_option("--config", o.config, "module configuration, JSON, passed to init_module");
  cmd->add_option("--timeout-ms", o.timeout_ms, "time limit of one call")->capture_default_str()
      ->check(CLI::Range(1u, 3'600'000u));
  cmd->add_option("--memory-limit-bytes", o.memory_limit_bytes, "memory limit of an instance")
      ->capture_default_str()->check(CLI::Range(uint64_t{65536}, uint64_t{4294967296}));
  cmd->add_option("--max-output-bytes", o.max_output_bytes, "largest result a call may return")
      ->capture_default_str();
}

// A sandbox with the module loaded, or a one-line reason on stderr.
struct LoadedModule {
  std::unique_ptr<wasm::Sandbox> sandbox;
  std::shared_ptr<const wasm::Module> module;
};

std::optional<LoadedModule> load_module(const ModuleOptions& o) {
  auto fail = [&](const std::string& why) -> std::optional<LoadedModule> {
    std::cerr << "error: cannot load module " << o.module_path << ": " << why << "\n";
    return std::nullopt;
  };
  wasm::InstanceSettings settings;
  settings.timeout_ms = o.timeout_ms;
  settings.memory_limit_bytes = o.memory_limit_bytes;
  settings.max_output_bytes = o.max_output_bytes;
  if (!o.config.empty()) {
    boost::system::error_code ec;
    boost::json::value config = boost::json::parse(o.config, ec);
    if (ec) {
      // The option is wrong, not the module.
      std::cerr << "error: --config is not valid JSON: " << ec.message() << "\n";
      return std::nullopt;
    }
    settings.config_json = boost::json::serialize(config);
  }
  std::ifstream file(o.module_path, std::ios::binary);
  if (!file) return fail("cannot open the file");
  std::vector<uint8_t> binary((std::istreambuf_iterator<char>(file)), {});
  if (Status s = wasm::initialize_engine(); !s.is_ok()) return fail(s.message());
  auto sandbox = wasm::Sandbox::create();
  if (!sandbox.is_ok()) return fail(sandbox.status().message());
  std::string id = std::filesystem::path(o.module_path).stem().string();
  auto module = (*sandbox)->load(id, binary, std::move(settings));
  if (!module.is_ok()) return fail(module.status().message());
  // Instantiate now so that a module whose start-up fails is reported as not loadable.
  if (Status s = (*sandbox)->warm_up(*module, 1); !s.is_ok()) return fail(s.message());
  return LoadedModule{std::move(*sandbox), std::move(*module)};
}

// Reads NDJSON messages; calls `on_line(index, message_or_error)` for each non-blank line.
template <typename OnLine>
bool read_messages(const std::string& input_path, OnLine&& on_line) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!input_path.empty() && input_path != "-") {
    file.open(input_path);
    if (!file) {
      std::cerr << "error: cannot open input " << input_path << "\n";
      return false;
    }
    in = &file;
  }
  std::string line;
  for (size_t index = 0; std::getline(*in, line); ++index) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    boost::system::error_code ec;
    boost::json::value json = boost::json::parse(line, ec);
    Message message;
    Status status = ec ? invalid_argument("malformed JSON: " + ec.message())
                       : message_from_json(json, now_ms(), &message);
    on_line(index, status, std::move(message));
  }
  return true;
}

}  // namespace

int run_transform(const ModuleOptions& o, const std::string& input_path, TransformCounts* counts) {
  TransformCounts seen;
  auto loaded = load_module(o);
  if (!loaded) return 1;
  const bool interactive = input_path.empty() || input_path == "-";
  wasm::Sandbox::Scope entered(*loaded->sandbox);
  bool ok = read_messages(input_path, [&](size_t index, const Status& parsed, Message message) {
    boost::json::object out;
    out["input"] = index;
    boost::json::array messages;
    auto error = [&](const std::string& why) {
      ++seen.errors;
      out["status"] = "error";
      out["should_continue"] = false;
      out["messages"] = boost::json::array();
      out["error"] = why;
    };
    if (!parsed.is_ok()) {
      error("line " + std::to_string(index + 1) + ": " + parsed.message());
    } else {
      auto result = loaded->sandbox->process(loaded->module, message);
      if (!result.is_ok()) {
        error(result.status().message());
      } else if (result->error) {
        error(*result->error);
        out["should_continue"] = result->should_continue;
      } else {
        for (const auto& m : result->transformed_messages) messages.push_back(message_to_json(m));
        ++(messages.empty() ? seen.filtered : seen.transformed);
        out["status"] = messages.empty() ? "filtered" : "ok";
        out["should_continue"] = result->should_continue;
        out["messages"] = std::move(messages);
      }
    }
    std::cout << json_text(out) << '\n';
    if (interactive) std::cout.flush();
  });
  std::cout.flush();
  if (counts) *counts = seen;
  return ok ? 0 : 1;
}

namespace {

int bench(const ModuleOptions& o, const std::string& input_path, double seconds, size_t batch) {
  std::vector<Message> messages;
  bool input_ok = true;
  bool read = read_messages(input_path, [&](size_t index, const Status& parsed, Message message) {
    if (!parsed.is_ok()) {
      std::cerr << "error: input line " << index + 1 << ": " << parsed.message() << "\n";
      input_ok = false;
    }
    messages.push_back(std::move(message));
  });
  if (!read || !input_ok) return 1;
  if (messages.empty()) {
    std::cerr << "error: no input messages\n";
    return 1;
  }
  auto loaded = load_module(o);
  if (!loaded) return 1;
  const bool batched = batch > 1 && loaded->module->info().has_process_batch;

  // The input repeated into whole batches, built before the clock starts.
  std::vector<std::vector<Message>> batches;
  if (batched) {
    size_t total = std::max(messages.size(), batch);
    total = (total + batch - 1) / batch * batch;
    for (size_t i = 0; i < total; i += batch) {
      std::vector<Message> b;
      for (size_t j = 0; j < batch; ++j) b.push_back(messages[(i + j) % messages.size()]);
      batches.push_back(std::move(b));
    }
  }

  auto call_failed = [](const Status& s) {
    std::cerr << "error: call failed: " << s.message() << "\n";
    return 1;
  };
  using Clock = std::chrono::steady_clock;
  // One untimed round: first-call effects stay out of the figure.
  if (batched) {
    if (auto r = loaded->sandbox->process_batch(loaded->module, batches[0]); !r.is_ok()) {
      return call_failed(r.status());
    }
  } else if (auto r = loaded->sandbox->process(loaded->module, messages[0]); !r.is_ok()) {
    return call_failed(r.status());
  }

  wasm::Sandbox::Scope entered(*loaded->sandbox);
  uint64_t count = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  auto now = start;
  size_t next = 0;
  while (now < end) {
    if (batched) {
      auto r = loaded->sandbox->process_batch(loaded->module, batches[next]);
      if (!r.is_ok()) return call_failed(r.status());
      count += batch;
      next = (next + 1) % batches.size();
    } else {
      for (int i = 0; i < 64; ++i) {
        auto r = loaded->sandbox->process(loaded->module, messages[next]);
        if (!r.is_ok()) return call_failed(r.status());
        next = (next + 1) % messages.size();
      }
      count += 64;
    }
    now = Clock::now();
  }
  double elapsed = std::chrono::duration<double>(now - start).count();
  boost::json::object out;
  out["module"] = loaded->module->id();
  out["mode"] = batched ? "batch" : "single";
  if (batched) out["batch"] = batch;
  out["messages"] = count;
  out["seconds"] = elapsed;
  out["messages_per_second"] = static_cast<double>(count) / elapsed;
  out["ns_per_message"] = elapsed * 1e9 / static_cast<double>(count);
  std::cout << json_text(out) << std::endl;
  return 0;
}

}  // namespace

void add_transform_command(CLI::App& app, int& exit_code) {
  CLI::App* transform = app.add_subcommand("transform", "run a module on messages, no broker needed");
  transform->require_subcommand(1);

  auto run_options = std::make_shared<ModuleOptions>();
  auto run_input = std::make_shared<std::string>();
  CLI::App* run_cmd = transform->add_subcommand(
      "run", "read NDJSON messages, write one NDJSON result line per message");
  add_module_options(run_cmd, *run_options);
  run_cmd->add_option("--input", *run_input, "NDJSON messages (default: stdin)");
  run_cmd->callback([=, &exit_code] { exit_code = run_transform(*run_options, *run_input); });

  auto bench_options = std::make_shared<ModuleOptions>();
  auto bench_input = std::make_shared<std::string>();
  auto bench_seconds = std::make_shared<double>(3.0);
  auto bench_batch = std::make_shared<size_t>(1);
  CLI::App* bench_cmd = transform->add_subcommand(
      "bench", "run a module on the input messages in a loop and print its speed as JSON");
  add_module_options(bench_cmd, *bench_options);
  bench_cmd->add_option("--input", *bench_input, "NDJSON messages (default: stdin)");
  bench_cmd->add_option("--seconds", *bench_seconds, "how long to measure")
      ->capture_default_str()->check(CLI::Range(0.01, 3600.0));
  bench_cmd->add_option("--batch", *bench_batch, "messages per process_batch call (when exported)")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{65536}));
  bench_cmd->callback([=, &exit_code] {
    exit_code = bench(*bench_options, *bench_input, *bench_seconds, *bench_batch);
  });
}

}  // namespace wasmq::cli
