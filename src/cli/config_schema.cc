// The configuration keys (key_specs): each key's path, type, accepted values and struct member,
// and what is derived from the table (sections, environment variables, the effective
// configuration as JSON, config_keys).
#include <spdlog/common.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cli/config.h"
#include "cli/config_internal.h"
#include "storage/partition_log.h"
#include "storage/topic_store.h"

namespace wasmq::cli {

namespace json = boost::json;

namespace config_internal {

std::string human_bytes(int64_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + " GiB";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + " KiB";
  return std::to_string(n) + " bytes";
}

std::string json_quoted(std::string_view s) { return json::serialize(json::string(s)); }

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

enum class Unit { kCount, kBytes };
enum class Unlimited { kNo, kMinusOne };  // whether -1 means "no limit"

std::string describe_range(int64_t min, int64_t max, Unit unit, Unlimited unlimited) {
  std::string text = unlimited == Unlimited::kMinusOne ? "-1 (no limit) or " : "";
  if (max == kInt64Max) {
    text += min == 1 ? "a positive integer" : "an integer of at least " + std::to_string(min);
  } else {
    text += "an integer between " + std::to_string(min) + " and " + std::to_string(max);
    if (unit == Unit::kBytes) text += " (" + human_bytes(min) + " to " + human_bytes(max) + ")";
  }
  return text;
}

std::string describe_choices(const std::vector<std::string>& names) {
  std::string text = names.size() > 2 ? "one of " : "";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += names.size() > 2 ? ", " : " or ";
    text += json_quoted(names[i]);
  }
  return text;
}

// A rule for string values: what is expected, and a predicate.
struct StringRule {
  std::string expected;
  std::function<bool(const std::string&)> accepts;
};

const StringRule kOptionalPath{"a path (empty: the default)",
                               [](const std::string&) { return true; }};
const StringRule kPath{"a non-empty path", [](const std::string& s) { return !s.empty(); }};
const StringRule kListen{"host:port with a port between 0 and 65535 (0: any free port)",
                         [](const std::string& s) { return parse_listen_address(s).is_ok(); }};
const StringRule kOptionalListen{
    "host:port with a port between 0 and 65535, or \"\" (off)",
    [](const std::string& s) { return s.empty() || parse_listen_address(s).is_ok(); }};
const StringRule kOptionalAdvertised{
    "host:port with a port between 1 and 65535, or \"\" (the listen address)",
    [](const std::string& s) {
      if (s.empty()) return true;
      auto a = parse_listen_address(s);
      return a.is_ok() && a->port != 0 && !a->host.empty();
    }};
const StringRule kTopicName{
    "a topic name: 1 to 249 letters, digits, '.', '_' or '-'",
    [](const std::string& s) { return storage::validate_topic_name(s).is_ok(); }};
const StringRule kNonEmpty{"a non-empty string", [](const std::string& s) { return !s.empty(); }};
const StringRule kLogTarget{"a log target name (letters, digits, '.', '_', '-', ':')",
                            [](const std::string& s) {
                              return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                                       c == '_' || c == '-' || c == ':';
                              });
                            }};

// `field` is a generic lambda returning a reference to the member, for Config& and const Config&.
template <typename Field>
KeySpec boolean(std::string path, Field field) {
  return {std::move(path),
          ValueType::kBool,
          "true or false",
          [](const KeyValue&) { return true; },
          [field](Config& c, const KeyValue& v) { field(c) = std::get<bool>(v); },
          [field](const Config& c) { return json::value(field(c)); }};
}

template <typename Field>
KeySpec integer(std::string path, Field field, int64_t min, int64_t max, Unit unit = Unit::kCount,
                Unlimited unlimited = Unlimited::kNo) {
  using T = std::remove_reference_t<decltype(field(std::declval<Config&>()))>;
  return {
      std::move(path),
      ValueType::kInteger,
      describe_range(min, max, unit, unlimited),
      [=](const KeyValue& v) {
        int64_t n = std::get<int64_t>(v);
        return (n >= min && n <= max) || (unlimited == Unlimited::kMinusOne && n == -1);
      },
      [field](Config& c, const KeyValue& v) { field(c) = static_cast<T>(std::get<int64_t>(v)); },
      [field](const Config& c) { return json::value(field(c)); }};
}

template <typename Field>
KeySpec number(std::string path, Field field, double min, double max) {
  std::ostringstream expected;
  expected << "a number between " << min << " and " << max;
  return {std::move(path),
          ValueType::kFloat,
          expected.str(),
          [=](const KeyValue& v) {
            double x = std::get<double>(v);
            return x >= min && x <= max;
          },
          [field](Config& c, const KeyValue& v) { field(c) = std::get<double>(v); },
          [field](const Config& c) { return json::value(field(c)); }};
}

enum class Secret { kNo, kYes };  // kYes: redacted by effective_config_json

template <typename Field>
KeySpec text(std::string path, Field field, const StringRule& rule, Secret secret = Secret::kNo) {
  KeySpec spec{
      std::move(path),
      ValueType::kString,
      rule.expected,
      [accepts = rule.accepts](const KeyValue& v) { return accepts(std::get<std::string>(v)); },
      [field](Config& c, const KeyValue& v) { field(c) = std::get<std::string>(v); },
      [field](const Config& c) { return json::value(field(c)); }};
  spec.secret = secret == Secret::kYes;
  return spec;
}

template <typename Field>
KeySpec text_list(std::string path, Field field, const StringRule& each) {
  return {
      std::move(path),
      ValueType::kStringList,
      "an array of strings, each " + each.expected,
      [accepts = each.accepts](const KeyValue& v) {
        const auto& items = std::get<std::vector<std::string>>(v);
        return std::all_of(items.begin(), items.end(), accepts);
      },
      [field](Config& c, const KeyValue& v) { field(c) = std::get<std::vector<std::string>>(v); },
      [field](const Config& c) {
        json::array out;
        for (const auto& s : field(c)) out.emplace_back(s);
        return json::value(std::move(out));
      }};
}

template <typename Enum, typename Field>
KeySpec choice(std::string path, Field field, std::vector<std::pair<std::string, Enum>> names) {
  std::vector<std::string> labels;
  for (const auto& [label, value] : names) labels.push_back(label);
  auto find = [names](const std::string& label) -> std::optional<Enum> {
    for (const auto& [l, value] : names) {
      if (l == label) return value;
    }
    return std::nullopt;
  };
  return {
      std::move(path),
      ValueType::kString,
      describe_choices(labels),
      [find](const KeyValue& v) { return find(std::get<std::string>(v)).has_value(); },
      [field, find](Config& c, const KeyValue& v) { field(c) = *find(std::get<std::string>(v)); },
      [field, names](const Config& c) {
        for (const auto& [label, value] : names) {
          if (value == field(c)) return json::value(label);
        }
        return json::value(nullptr);
      }};
}

// The key's path as a string and a lambda reaching the member of the same name: the struct
// members are named after the TOML keys, so the two cannot drift apart.
// clang-format off
#define WASMQ_KEY(path) #path, [](auto& c) -> auto& { return c.path; }
// clang-format on

}  // namespace

// Every key, in documentation order. Adding a key: a member in config.h and one line here.
const std::vector<KeySpec>& key_specs() {
  using spdlog::level::level_enum;
  static const std::vector<KeySpec> specs = {
      text(WASMQ_KEY(broker.data_dir), kPath),
      text(WASMQ_KEY(broker.listen), kListen),
      boolean(WASMQ_KEY(broker.auto_create_topics)),
      integer(WASMQ_KEY(broker.default_partitions), 1, 1024),
      integer(WASMQ_KEY(broker.io_threads), 0, 1024),
      integer(WASMQ_KEY(broker.max_topics), 1, 1'000'000),
      integer(WASMQ_KEY(broker.max_connections), 1, 1'000'000),

      text(WASMQ_KEY(admin.listen), kListen),
      integer(WASMQ_KEY(admin.max_connections), 1, 1'000'000),

      text(WASMQ_KEY(kafka.listen), kOptionalListen),
      text(WASMQ_KEY(kafka.advertised_listener), kOptionalAdvertised),
      integer(WASMQ_KEY(kafka.max_request_bytes), kKiB, kGiB, Unit::kBytes),

      integer(WASMQ_KEY(http.max_body_bytes), kKiB, kGiB, Unit::kBytes),

      integer(WASMQ_KEY(storage.segment_bytes), kMiB, kGiB, Unit::kBytes),
      choice<storage::FsyncPolicy>(WASMQ_KEY(storage.fsync),
                                   {{"always", storage::FsyncPolicy::kAlways},
                                    {"interval", storage::FsyncPolicy::kInterval}}),
      integer(WASMQ_KEY(storage.fsync_interval_ms), 1, 3'600'000),
      integer(WASMQ_KEY(storage.retention_ms), 1, kInt64Max, Unit::kCount, Unlimited::kMinusOne),
      integer(WASMQ_KEY(storage.retention_bytes), 1, kInt64Max, Unit::kBytes, Unlimited::kMinusOne),
      integer(WASMQ_KEY(storage.index_interval_bytes), 1, 16 * kMiB, Unit::kBytes),
      integer(WASMQ_KEY(storage.max_open_files), 16, 1'000'000),

      boolean(WASMQ_KEY(etl.enabled)),
      integer(WASMQ_KEY(etl.memory_limit_bytes), kMiB, 4 * kGiB, Unit::kBytes),
      integer(WASMQ_KEY(etl.execution_timeout_ms), 1, 3'600'000),
      integer(WASMQ_KEY(etl.max_concurrent_executions), 1, 100'000),
      text(WASMQ_KEY(etl.modules_path), kOptionalPath),
      boolean(WASMQ_KEY(etl.enable_metrics)),
      integer(WASMQ_KEY(etl.gc_interval_ms), 100, 86'400'000),
      integer(WASMQ_KEY(etl.max_idle_instances), 0, 100'000),
      integer(WASMQ_KEY(etl.memory_warning_threshold_percent), 1, 100),
      integer(WASMQ_KEY(etl.cpu_warning_threshold_percent), 1, 100),
      integer(WASMQ_KEY(etl.module_cache_size), 1, 100'000),
      integer(WASMQ_KEY(etl.module_cache_ttl_seconds), 1, 31'536'000),
      integer(WASMQ_KEY(etl.module_compile_timeout_ms), 100, 600'000),
      integer(WASMQ_KEY(etl.module_compile_max_memory_bytes), 64 * kMiB, 64 * kGiB, Unit::kBytes),
      boolean(WASMQ_KEY(etl.enable_error_topic)),
      text(WASMQ_KEY(etl.error_topic_prefix), kTopicName),
      integer(WASMQ_KEY(etl.max_error_message_size), 0, 64 * kMiB, Unit::kBytes),
      boolean(WASMQ_KEY(etl.enable_module_signature_verification)),
      text_list(WASMQ_KEY(etl.allowed_module_sources), kNonEmpty),
      boolean(WASMQ_KEY(etl.sandbox_strict_mode)),
      boolean(WASMQ_KEY(etl.enable_debug_logging)),
      boolean(WASMQ_KEY(etl.log_execution_times)),
      boolean(WASMQ_KEY(etl.log_memory_usage)),
      integer(WASMQ_KEY(etl.workers), 0, 1024),
      integer(WASMQ_KEY(etl.max_batch_size), 1, 65'536),
      integer(WASMQ_KEY(etl.max_output_bytes), kKiB, kGiB, Unit::kBytes),
      integer(WASMQ_KEY(etl.max_queued_batches), 1, 100'000),
      integer(WASMQ_KEY(etl.max_queued_bytes), kMiB, 1024 * kGiB, Unit::kBytes),
      integer(WASMQ_KEY(etl.result_cache_max_bytes), kMiB, 1024 * kGiB, Unit::kBytes),

      integer(WASMQ_KEY(etl.instance_pool.max_pool_size), 0, 10'000),
      integer(WASMQ_KEY(etl.instance_pool.warmup_instances), 0, 10'000),
      number(WASMQ_KEY(etl.instance_pool.creation_rate_limit), 0.1, 100'000),
      integer(WASMQ_KEY(etl.instance_pool.idle_timeout_seconds), 1, 604'800),
      boolean(WASMQ_KEY(etl.instance_pool.enable_lru_eviction)),
      boolean(WASMQ_KEY(etl.instance_pool.enable_background_cleanup)),
      integer(WASMQ_KEY(etl.instance_pool.max_memory_bytes), kMiB, 1024 * kGiB, Unit::kBytes),

      boolean(WASMQ_KEY(etl_management.enabled)),
      text(WASMQ_KEY(etl_management.pipeline_metadata_path), kOptionalPath),
      integer(WASMQ_KEY(etl_management.default_batch_size), 1, 65'536),
      integer(WASMQ_KEY(etl_management.default_timeout_ms), 1, 3'600'000),
      integer(WASMQ_KEY(etl_management.default_retry_attempts), 0, 100),
      integer(WASMQ_KEY(etl_management.health_check_interval_ms), 100, 86'400'000),
      integer(WASMQ_KEY(etl_management.metrics_collection_interval_ms), 100, 86'400'000),
      integer(WASMQ_KEY(etl_management.max_pipelines_per_broker), 1, 100'000),
      integer(WASMQ_KEY(etl_management.max_total_pipelines), 1, 1'000'000),

      choice<level_enum>(WASMQ_KEY(logging.level), {{"trace", spdlog::level::trace},
                                                    {"debug", spdlog::level::debug},
                                                    {"info", spdlog::level::info},
                                                    {"warn", spdlog::level::warn},
                                                    {"error", spdlog::level::err}}),
      text_list(WASMQ_KEY(logging.targets), kLogTarget),
      text(WASMQ_KEY(logging.file), kOptionalPath),
      choice<LogFormat>(WASMQ_KEY(logging.format),
                        {{"text", LogFormat::kText}, {"json", LogFormat::kJson}}),

      text(WASMQ_KEY(security.tokens_file), kOptionalPath),
      text(WASMQ_KEY(security.tls_cert), kOptionalPath),
      text(WASMQ_KEY(security.tls_key), kOptionalPath),
      text(WASMQ_KEY(security.audit_log), kOptionalPath),
      integer(WASMQ_KEY(security.audit_log_max_bytes), kMiB, 1024 * kGiB, Unit::kBytes),
      text_list(WASMQ_KEY(security.module_signing_keys), kPath),
  };
  return specs;
}

#undef WASMQ_KEY

const KeySpec* find_spec(std::string_view path) {
  for (const auto& spec : key_specs()) {
    if (spec.path == path) return &spec;
  }
  return nullptr;
}

// The sections: every proper prefix of a key path ("etl", "etl.instance_pool", ...).
const std::set<std::string, std::less<>>& section_paths() {
  static const std::set<std::string, std::less<>> sections = [] {
    std::set<std::string, std::less<>> out;
    for (const auto& spec : key_specs()) {
      for (size_t dot = spec.path.find('.'); dot != std::string::npos;
           dot = spec.path.find('.', dot + 1)) {
        out.insert(spec.path.substr(0, dot));
      }
    }
    return out;
  }();
  return sections;
}

std::string env_variable_for(std::string_view path) {
  std::string name = "WASMQ_";
  for (char c : path) name += c == '.' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

}  // namespace config_internal

using config_internal::env_variable_for;
using config_internal::key_specs;

boost::json::object effective_config_json(const Config& config) {
  json::object root;
  for (const auto& spec : key_specs()) {
    json::object* section = &root;
    std::string_view rest = spec.path;
    for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
      json::value& child = (*section)[rest.substr(0, dot)];
      if (!child.is_object()) child = json::object();
      section = &child.as_object();
      rest.remove_prefix(dot + 1);
    }
    json::value value = spec.get(config);
    bool empty = value.is_string() && value.as_string().empty();
    (*section)[rest] = spec.secret && !empty ? json::value(kRedacted) : std::move(value);
  }
  root["etl"].as_object()["pipelines"] = config.etl.pipelines;
  return root;
}

std::vector<ConfigKeyInfo> config_keys() {
  std::vector<ConfigKeyInfo> out;
  for (const auto& spec : key_specs()) {
    out.push_back({spec.path, env_variable_for(spec.path), spec.expected, spec.secret});
  }
  return out;
}

}  // namespace wasmq::cli
