#include "cli/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

#include "etl/pipeline.h"
#include "storage/topic_store.h"

namespace wasmq::cli {
namespace {

namespace json = boost::json;

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxFileBytes = 16 * kMiB;
constexpr size_t kMaxShownValue = 60;

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
  std::function<json::value(const Config&)> get;
  bool secret = false;  // effective_config_json shows kRedacted instead of the value
};

std::string human_bytes(int64_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + " GiB";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + " KiB";
  return std::to_string(n) + " bytes";
}

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

std::string json_quoted(std::string_view s) { return json::serialize(json::string(s)); }

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

// Every key, in documentation order. Adding a key: a member in config.h and one line here.
const std::vector<KeySpec>& key_specs() {
  using spdlog::level::level_enum;
  static const std::vector<KeySpec> specs = {
      text(WASMQ_KEY(broker.data_dir), kPath),
      text(WASMQ_KEY(broker.listen), kListen),
      boolean(WASMQ_KEY(broker.auto_create_topics)),
      integer(WASMQ_KEY(broker.default_partitions), 1, 1024),
      integer(WASMQ_KEY(broker.io_threads), 0, 1024),
      integer(WASMQ_KEY(broker.max_connections), 1, 1'000'000),

      text(WASMQ_KEY(admin.listen), kListen),
      integer(WASMQ_KEY(admin.max_connections), 1, 1'000'000),

      integer(WASMQ_KEY(http.max_body_bytes), kKiB, kGiB, Unit::kBytes),

      integer(WASMQ_KEY(storage.segment_bytes), kMiB, kGiB, Unit::kBytes),
      choice<storage::FsyncPolicy>(WASMQ_KEY(storage.fsync),
                                   {{"always", storage::FsyncPolicy::kAlways},
                                    {"interval", storage::FsyncPolicy::kInterval}}),
      integer(WASMQ_KEY(storage.fsync_interval_ms), 1, 3'600'000),
      integer(WASMQ_KEY(storage.retention_ms), 1, kInt64Max, Unit::kCount, Unlimited::kMinusOne),
      integer(WASMQ_KEY(storage.retention_bytes), 1, kInt64Max, Unit::kBytes, Unlimited::kMinusOne),
      integer(WASMQ_KEY(storage.index_interval_bytes), 1, 16 * kMiB, Unit::kBytes),

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

constexpr std::string_view kPipelinesPath = "etl.pipelines";

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

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest known key or section to a misspelt `path`, if one is close enough.
std::optional<std::string> closest_known(std::string_view path) {
  std::optional<std::string> best;
  if (path.size() > 100) return best;  // no key is that long; spare the quadratic comparison
  size_t best_distance = 3;
  auto consider = [&](std::string_view candidate) {
    size_t d = edit_distance(path, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  };
  for (const auto& spec : key_specs()) consider(spec.path);
  for (const auto& section : section_paths()) consider(section);
  consider(kPipelinesPath);
  return best;
}

// TOML → JSON, for pipeline documents and for showing a wrong value. Dates and times become
// their TOML text.
json::value to_json(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: {
      json::object out;
      for (auto&& [key, value] : *node.as_table()) out[key.str()] = to_json(value);
      return out;
    }
    case toml::node_type::array: {
      json::array out;
      for (const auto& item : *node.as_array()) out.push_back(to_json(item));
      return out;
    }
    case toml::node_type::string:
      return json::value(node.as_string()->get());
    case toml::node_type::integer:
      return json::value(node.as_integer()->get());
    case toml::node_type::floating_point:
      return json::value(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return json::value(node.as_boolean()->get());
    default: {
      std::ostringstream text;
      text << toml::toml_formatter(node);
      return json::value(text.str());
    }
  }
}

std::string shorten(std::string text) {
  if (text.size() <= kMaxShownValue) return text;
  size_t cut = kMaxShownValue - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return text.substr(0, cut) + "...";
}

// A key path as shown in a message: as it is, or quoted (and shortened) when it holds characters
// that would break the one-line message.
std::string printable_path(std::string_view path) {
  bool plain = std::none_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  return plain && path.size() <= 200 ? std::string(path) : shorten(json_quoted(path));
}

// How a wrong value is shown in a message: on one line, shortened.
std::string describe_node(const toml::node& node) {
  if (node.is_table()) return "a table";
  if (node.is_floating_point()) {
    std::ostringstream text;  // "10.5" rather than JSON's "1.05E1"
    text << toml::toml_formatter(node);
    return shorten(text.str());
  }
  return shorten(json::serialize(to_json(node)));
}

// Reads a TOML value as `type`; nullopt when its TOML type does not fit.
std::optional<KeyValue> value_from_toml(const toml::node& node, ValueType type) {
  switch (type) {
    case ValueType::kBool:
      if (node.is_boolean()) return KeyValue(node.as_boolean()->get());
      break;
    case ValueType::kInteger:
      if (node.is_integer()) return KeyValue(node.as_integer()->get());
      break;
    case ValueType::kFloat:
      if (node.is_floating_point()) return KeyValue(node.as_floating_point()->get());
      if (node.is_integer()) return KeyValue(static_cast<double>(node.as_integer()->get()));
      break;
    case ValueType::kString:
      if (node.is_string()) return KeyValue(node.as_string()->get());
      break;
    case ValueType::kStringList: {
      if (!node.is_array()) break;
      std::vector<std::string> items;
      for (const auto& item : *node.as_array()) {
        if (!item.is_string()) return std::nullopt;
        items.push_back(item.as_string()->get());
      }
      return KeyValue(std::move(items));
    }
  }
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads an environment variable's text as `type`: true/false, a decimal integer, a number, the
// text itself, or a comma-separated list.
std::optional<KeyValue> value_from_text(std::string_view text, ValueType type) {
  switch (type) {
    case ValueType::kBool:
      if (text == "true") return KeyValue(true);
      if (text == "false") return KeyValue(false);
      return std::nullopt;
    case ValueType::kInteger: {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
      }
      return KeyValue(n);
    }
    case ValueType::kFloat: {
      double x = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
      if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
      }
      return KeyValue(x);
    }
    case ValueType::kString:
      return KeyValue(std::string(text));
    case ValueType::kStringList: {
      std::vector<std::string> items;
      if (trim(text).empty()) return KeyValue(items);
      size_t start = 0;
      while (true) {
        size_t comma = text.find(',', start);
        items.emplace_back(trim(text.substr(start, comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      return KeyValue(std::move(items));
    }
  }
  return std::nullopt;
}

// Loads one configuration: file values over defaults, then environment values, then the
// checks that involve more than one key.
class Loader {
 public:
  Loader(std::string_view source_name, const Environment& environment)
      : source_(source_name), environment_(environment) {}

  Result<LoadedConfig> load(std::string_view toml_text) {
    toml::table root;
    try {
      root = toml::parse(toml_text, std::string_view(source_));
    } catch (const toml::parse_error& e) {
      return invalid_argument(source_ + ":" + std::to_string(e.source().begin.line) + ":" +
                              std::to_string(e.source().begin.column) + ": " +
                              std::string(e.description()));
    }
    if (Status s = read_table(root, ""); !s.is_ok()) return s;
    if (Status s = read_environment(); !s.is_ok()) return s;
    if (Status s = check_together(); !s.is_ok()) return s;
    fill_in_derived_values();
    warn_about_open_listeners();
    return LoadedConfig{std::move(config_), std::move(warnings_)};
  }

 private:
  Status fail(const std::string& where, std::string_view path, const std::string& what) const {
    return invalid_argument(where + ": " + printable_path(path) + ": " + what);
  }

  std::string at_line(const toml::source_region& source) const {
    return source_ + ":" + std::to_string(source.begin.line);
  }

  // Where a key's value came from: "file:line", the variable's name, or the file for defaults.
  std::string origin_of(std::string_view path) const {
    auto it = origins_.find(std::string(path));
    return it == origins_.end() ? source_ : it->second;
  }

  Status read_table(const toml::table& table, const std::string& prefix) {
    for (auto&& [key, node] : table) {
      const std::string name(key.str());
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      const std::string where = at_line(key.source());
      // A quoted key with a dot ("broker.listen" = ...) is one key, not a path: never known.
      bool plain = !name.empty() && name.find('.') == std::string::npos;
      if (plain && path == kPipelinesPath) {
        if (Status s = read_pipelines(node, where); !s.is_ok()) return s;
      } else if (plain && section_paths().count(path)) {
        if (!node.is_table()) {
          return fail(where, path, "expected a table ([" + path + "]), got " + describe_node(node));
        }
        if (Status s = read_table(*node.as_table(), path); !s.is_ok()) return s;
      } else if (const KeySpec* spec = plain ? find_spec(path) : nullptr) {
        std::optional<KeyValue> value = value_from_toml(node, spec->type);
        if (!value || !spec->accepts(*value)) {
          return fail(where, path, "expected " + spec->expected + ", got " + describe_node(node));
        }
        spec->set(config_, *value);
        origins_[path] = where;
      } else {
        std::string what = "unknown key";
        if (auto near = closest_known(path)) what += " (did you mean " + *near + "?)";
        return fail(where, path, what);
      }
    }
    return Status::ok();
  }

  Status read_pipelines(const toml::node& node, const std::string& where) {
    if (!node.is_array()) {
      return fail(where, kPipelinesPath,
                  "expected an array of tables ([[etl.pipelines]]), got " + describe_node(node));
    }
    const toml::array& items = *node.as_array();
    for (size_t i = 0; i < items.size(); ++i) {
      const toml::node& item = items[i];
      if (!item.is_table()) {
        return fail(at_line(item.source()),
                    std::string(kPipelinesPath) + "[" + std::to_string(i) + "]",
                    "expected a table, got " + describe_node(item));
      }
      config_.etl.pipelines.push_back(to_json(item));
      config_.etl.pipeline_lines.push_back(item.source().begin.line);
    }
    origins_[std::string(kPipelinesPath)] = where;
    return Status::ok();
  }

  Status read_environment() {
    for (const auto& spec : key_specs()) {
      const std::string variable = env_variable_for(spec.path);
      auto it = environment_.find(variable);
      if (it == environment_.end()) continue;
      std::optional<KeyValue> value = value_from_text(it->second, spec.type);
      if (!value || !spec.accepts(*value)) {
        return fail(variable, spec.path,
                    "expected " + spec.expected + ", got " + shorten(json_quoted(it->second)));
      }
      spec.set(config_, *value);
      origins_[spec.path] = variable;
    }
    // A misspelt variable of a known section would otherwise be ignored without a word.
    for (const auto& [name, value] : environment_) {
      if (is_config_variable(name) || !names_a_section(name)) continue;
      warnings_.push_back(name + ": not a configuration variable; ignored");
    }
    return Status::ok();
  }

  static bool is_config_variable(std::string_view name) {
    for (const auto& spec : key_specs()) {
      if (env_variable_for(spec.path) == name) return true;
    }
    return false;
  }

  static bool names_a_section(std::string_view name) {
    for (const auto& section : section_paths()) {
      if (name.starts_with(env_variable_for(section) + "_")) return true;
    }
    return false;
  }

  Status check_together() const {
    const auto& pool = config_.etl.instance_pool;
    if (pool.warmup_instances > pool.max_pool_size) {
      return fail(origin_of("etl.instance_pool.warmup_instances"),
                  "etl.instance_pool.warmup_instances",
                  "expected at most etl.instance_pool.max_pool_size (" +
                      std::to_string(pool.max_pool_size) + "), got " +
                      std::to_string(pool.warmup_instances));
    }
    const auto& management = config_.etl_management;
    if (management.max_pipelines_per_broker > management.max_total_pipelines) {
      return fail(origin_of("etl_management.max_pipelines_per_broker"),
                  "etl_management.max_pipelines_per_broker",
                  "expected at most etl_management.max_total_pipelines (" +
                      std::to_string(management.max_total_pipelines) + "), got " +
                      std::to_string(management.max_pipelines_per_broker));
    }
    if (config_.etl.pipelines.size() > management.max_pipelines_per_broker) {
      size_t first_extra = management.max_pipelines_per_broker;
      return fail(source_ + ":" + std::to_string(config_.etl.pipeline_lines[first_extra]),
                  std::string(kPipelinesPath) + "[" + std::to_string(first_extra) + "]",
                  "more pipelines than etl_management.max_pipelines_per_broker (" +
                      std::to_string(management.max_pipelines_per_broker) + ")");
    }
    // The pipeline documents are checked by the same code as the pipeline API's.
    std::set<std::string> ids;
    for (size_t i = 0; i < config_.etl.pipelines.size(); ++i) {
      const std::string where = std::string(kPipelinesPath) + "[" + std::to_string(i) + "]";
      const std::string origin = source_ + ":" + std::to_string(config_.etl.pipeline_lines[i]);
      etl::PipelineSpec spec;
      if (auto error = etl::parse_pipeline(config_.etl.pipelines[i],
                                           "pipeline-" + std::to_string(i + 1), &spec)) {
        return Status(StatusCode::kInvalidArgument, origin + ": " + where + ": " + error->message);
      }
      if (!ids.insert(spec.pipeline_id).second) {
        return Status(StatusCode::kInvalidArgument,
                      origin + ": " + where + ": pipeline_id \"" + spec.pipeline_id +
                          "\" is used by another [[etl.pipelines]] table");
      }
    }
    const auto& security = config_.security;
    if (security.tls_cert.empty() != security.tls_key.empty()) {
      std::string_view set = security.tls_cert.empty() ? "security.tls_key" : "security.tls_cert";
      std::string_view missing =
          security.tls_cert.empty() ? "security.tls_cert" : "security.tls_key";
      return fail(origin_of(set), set,
                  "needs " + std::string(missing) + " as well (TLS takes a certificate and a key)");
    }
    if (config_.etl.enable_module_signature_verification && security.module_signing_keys.empty()) {
      return fail(origin_of("etl.enable_module_signature_verification"),
                  "etl.enable_module_signature_verification",
                  "needs security.module_signing_keys (the Ed25519 public keys that may sign "
                  "modules)");
    }
    auto data = parse_listen_address(config_.broker.listen);
    auto admin = parse_listen_address(config_.admin.listen);
    if (data->port == admin->port && data->port != 0 &&
        (data->host == admin->host || is_any_address(data->host) || is_any_address(admin->host))) {
      return fail(origin_of("admin.listen"), "admin.listen",
                  "expected an address other than broker.listen (" + config_.broker.listen +
                      "), got " + json_quoted(config_.admin.listen));
    }
    return Status::ok();
  }

  static bool is_any_address(std::string_view host) { return host == "0.0.0.0" || host == "::"; }

  void fill_in_derived_values() {
    const std::filesystem::path data_dir(config_.broker.data_dir);
    if (config_.etl.modules_path.empty()) {
      config_.etl.modules_path = (data_dir / "modules").string();
    }
    if (config_.etl_management.pipeline_metadata_path.empty()) {
      config_.etl_management.pipeline_metadata_path = (data_dir / "pipelines").string();
    }
    // The seeds name targets the Rust way ("rustmq::etl"); here that target is "etl".
    for (std::string& target : config_.logging.targets) {
      std::string_view rest = target;
      for (std::string_view crate : {"rustmq::", "wasmq::"}) {
        if (rest.starts_with(crate)) rest.remove_prefix(crate.size());
      }
      std::string normalized;
      for (size_t at = rest.find("::"); at != std::string_view::npos; at = rest.find("::")) {
        normalized.append(rest.substr(0, at)).append(".");
        rest.remove_prefix(at + 2);
      }
      target = normalized.append(rest);
    }
  }

  void warn_about_open_listeners() {
    const bool tokens = !config_.security.tokens_file.empty();
    const bool tls = !config_.security.tls_cert.empty();
    if (tokens && tls) return;
    auto warn = [&](std::string_view path, const std::string& listen, std::string_view api) {
      auto address = parse_listen_address(listen);
      if (!address.is_ok() || is_loopback_host(address->host)) return;
      if (!tokens) {
        warnings_.push_back(std::string(path) + " = " + json_quoted(listen) +
                            " accepts connections from other machines and security.tokens_file "
                            "is not set: the " +
                            std::string(api) + " is open to anyone who can reach it");
      } else {
        warnings_.push_back(std::string(path) + " = " + json_quoted(listen) +
                            " accepts connections from other machines and security.tls_cert is "
                            "not set: bearer tokens to the " +
                            std::string(api) + " cross the network in clear text");
      }
    };
    warn("broker.listen", config_.broker.listen, "data API");
    warn("admin.listen", config_.admin.listen, "admin API");
  }

  const std::string source_;
  const Environment& environment_;
  Config config_;
  std::vector<std::string> warnings_;
  std::map<std::string, std::string> origins_;  // key path → "file:line" or variable name
};

}  // namespace

Environment process_environment() {
  Environment out;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view text(*entry);
    size_t equals = text.find('=');
    if (equals == std::string_view::npos || !text.starts_with("WASMQ_")) continue;
    out.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return out;
}

Result<LoadedConfig> parse_config(std::string_view toml_text, std::string_view source_name,
                                  const Environment& environment) {
  return Loader(source_name, environment).load(toml_text);
}

Result<LoadedConfig> load_config(const std::filesystem::path& path,
                                 const Environment& environment) {
  const std::string name = path.string();
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return Status(StatusCode::kIo, name + ": cannot open: " + std::strerror(errno));
  }
  std::string text;
  char buffer[64 * 1024];
  while (file.read(buffer, sizeof buffer) || file.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(file.gcount()));
    if (text.size() > kMaxFileBytes) {
      return invalid_argument(name + ": larger than " + human_bytes(kMaxFileBytes) +
                              "; not a configuration file");
    }
  }
  if (file.bad()) return Status(StatusCode::kIo, name + ": cannot read");
  return parse_config(text, name, environment);
}

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

Result<ListenAddress> parse_listen_address(std::string_view text) {
  auto bad = [&] {
    return invalid_argument(
        "expected host:port with a port between 0 and 65535 (0: any free port), got " +
        json_quoted(text));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return bad();
    }
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // an IPv6 address needs brackets
  } else if (std::any_of(host.begin(), host.end(), [](char c) {
               return !(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-');
             })) {
    return bad();
  }
  if (host.empty()) return bad();
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535) {
    return bad();
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  // 127.0.0.0/8, written as a dotted quad.
  int parts = 0;
  for (size_t start = 0; start <= host.size(); ++parts) {
    size_t dot = std::min(host.find('.', start), host.size());
    std::string_view part = host.substr(start, dot - start);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || value > 255) {
      return false;
    }
    start = dot + 1;
  }
  return parts == 4;
}

}  // namespace wasmq::cli
