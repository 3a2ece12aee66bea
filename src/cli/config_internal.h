// Internal to the configuration loader (config_schema.cc, config_loader.cc, config_checks.cc):
// the key specs and the helpers those files share. Nothing else includes it.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli/config.h"
#include "common/status.h"

namespace wasmq::cli::config_internal {

inline constexpr int64_t kKiB = 1024;
inline constexpr int64_t kMiB = 1024 * kKiB;
inline constexpr int64_t kGiB = 1024 * kMiB;

// A key's value once its TOML type (or environment text) has been checked.
using KeyValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;
enum class ValueType { kBool, kInteger, kFloat, kString, kStringList };

// One configuration key: its dotted path, what it accepts, and how it reaches its struct member.
struct KeySpec {
  std::string path;
  ValueType type;
  std::string expected;  // "an integer between 1 and 1024", for messages and docs
  std::function<bool(const KeyValue&)> accepts;  // the value already has `type`
  std::function<void(Config&, const KeyValue&)> set;
  std::function<boost::json::value(const Config&)> get;
  bool secret = false;  // effective_config_json shows kRedacted instead of the value
};

// Every key, in documentation order.
const std::vector<KeySpec>& key_specs();

inline constexpr std::string_view kPipelinesPath = "etl.pipelines";

// The spec of the key at `path`; nullptr when there is none.
const KeySpec* find_spec(std::string_view path);

// The sections: every proper prefix of a key path ("etl", "etl.instance_pool", ...).
const std::set<std::string, std::less<>>& section_paths();

// The environment variable of a key or section: "storage.fsync" → "WASMQ_STORAGE_FSYNC".
std::string env_variable_for(std::string_view path);

// `n` bytes in the largest unit that divides it: "64 MiB", "1500 bytes".
std::string human_bytes(int64_t n);

// `s` as a JSON string literal, quotes and escapes included.
std::string json_quoted(std::string_view s);

// Where each key's value came from: key path → "file:line" or the variable's name.
using KeyOrigins = std::map<std::string, std::string>;

// kInvalidArgument with "<where>: <path>: <what>", the path quoted and shortened when it would
// break the one-line message.
Status fail(const std::string& where, std::string_view path, const std::string& what);

// The checks that involve more than one key, on `config` whose keys each passed their own.
// `source` names the file; `origins` tells where each value came from (a key not in it has its
// default and is shown as `source`).
Status check_together(const Config& config, const std::string& source, const KeyOrigins& origins);

}  // namespace wasmq::cli::config_internal
