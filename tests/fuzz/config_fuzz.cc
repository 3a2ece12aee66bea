// Fuzzes the broker's configuration reader (src/cli/config.h, parse_config): strict TOML, key
// checks, environment overrides and the [[etl.pipelines]] tables it hands to the pipeline parser.
// Comment lines "# WASMQ_NAME=value" in the input become environment variables, so the fuzzer
// reaches the overrides too (the TOML parser skips them as comments).
//
// Invariants: no crash; an accepted configuration renders as JSON (effective_config_json) with
// no secret in clear; a refused one says where ("broker.toml:..." or the variable's name).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli/config.h"
#include "fuzz_check.h"

using namespace wasmq;

namespace {

cli::Environment environment_of(std::string_view text) {
  cli::Environment environment;
  constexpr std::string_view kPrefix = "# WASMQ_";
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if (line.starts_with(kPrefix)) {
      line.remove_prefix(2);
      if (size_t eq = line.find('='); eq != std::string_view::npos) {
        environment[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      }
    }
    at = end + 1;
  }
  return environment;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const cli::Environment environment = environment_of(text);
  auto loaded = cli::parse_config(text, "broker.toml", environment);
  if (!loaded.is_ok()) {
    const std::string& message = loaded.status().message();
    FUZZ_CHECK(message.starts_with("broker.toml") || message.starts_with("WASMQ_"),
               "error without its source: " + message);
    return 0;
  }
  const boost::json::object rendered = cli::effective_config_json(loaded->config);
  (void)boost::json::serialize(rendered);
  for (const auto& key : cli::config_keys()) {
    if (!key.secret) continue;
    const boost::json::value* value = &rendered.at(key.path.substr(0, key.path.find('.')));
    std::string_view rest = std::string_view(key.path).substr(key.path.find('.') + 1);
    for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
      value = &value->as_object().at(rest.substr(0, dot));
      rest.remove_prefix(dot + 1);
    }
    value = &value->as_object().at(rest);
    FUZZ_CHECK(!value->is_string() || value->as_string().empty() ||
                   value->as_string() == cli::kRedacted,
               key.path + " is shown in clear");
  }
  return 0;
}
