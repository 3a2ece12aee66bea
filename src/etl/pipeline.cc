// The pipeline document: strict parsing with errors that name the JSON path of the bad field,
// the canonical JSON form, and RFC 7386 merge-patch.
#include "etl/pipeline.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <type_traits>
#include <utility>

#include "etl/json_path.h"
#include "etl/semver.h"

namespace wasmq::etl {
namespace {

namespace json = boost::json;

constexpr uint64_t kMinMemoryLimitBytes = 64 * 1024;
constexpr uint64_t kMaxMemoryLimitBytes = 4ull * 1024 * 1024 * 1024;
constexpr uint64_t kMaxRetries = 100;
constexpr uint64_t kMaxConcurrency = 1024;
constexpr uint64_t kMaxCacheTtlSeconds = 30ull * 24 * 3600;
constexpr double kMaxBackoffMultiplier = 100.0;
constexpr uint64_t kMaxBatchSize = 65536;
constexpr uint64_t kMaxFailureThreshold = 1'000'000;
constexpr uint64_t kMaxDeadLetterMessageSize = 256ull * 1024 * 1024;
constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxDescriptionLength = 4096;
constexpr size_t kMaxPatternLength = 4096;
constexpr size_t kMaxFieldPathLength = 1024;
constexpr size_t kMaxExecutionStrategyLength = 64;
constexpr size_t kMaxShownValue = 64;

template <typename E>
using NameTable = std::initializer_list<std::pair<std::string_view, E>>;

const NameTable<FilterType> kFilterTypes = {
    {"Exact", FilterType::kExact},   {"Wildcard", FilterType::kWildcard},
    {"Regex", FilterType::kRegex},   {"Prefix", FilterType::kPrefix},
    {"Suffix", FilterType::kSuffix}, {"Contains", FilterType::kContains},
};
const NameTable<ConditionType> kConditionTypes = {
    {"HeaderValue", ConditionType::kHeaderValue},
    {"PayloadField", ConditionType::kPayloadField},
    {"MessageSize", ConditionType::kMessageSize},
    {"MessageAge", ConditionType::kMessageAge},
};
const NameTable<Operator> kOperators = {
    {"Equals", Operator::kEquals},
    {"NotEquals", Operator::kNotEquals},
    {"GreaterThan", Operator::kGreaterThan},
    {"LessThan", Operator::kLessThan},
    {"GreaterThanOrEqual", Operator::kGreaterThanOrEqual},
    {"LessThanOrEqual", Operator::kLessThanOrEqual},
    {"Contains", Operator::kContains},
    {"StartsWith", Operator::kStartsWith},
    {"EndsWith", Operator::kEndsWith},
    {"Matches", Operator::kMatches},
};
const NameTable<ErrorHandling> kErrorHandlings = {
    {"StopPipeline", ErrorHandling::kStopPipeline},
    {"SkipModule", ErrorHandling::kSkipModule},
    {"RetryWithBackoff", ErrorHandling::kRetryWithBackoff},
    {"SendToDeadLetter", ErrorHandling::kSendToDeadLetter},
};
const NameTable<PipelineMode> kModes = {
    {"inline", PipelineMode::kInline},
    {"stream", PipelineMode::kStream},
};

template <typename E>
std::string_view name_in(NameTable<E> table, E value) {
  for (const auto& [name, entry] : table) {
    if (entry == value) return name;
  }
  return "?";
}

// The members each object may have. The pipeline's are split by form: the seed 001 form has no
// `name`/`stages`, the 000/003 form no `pipeline_name`/`module_name`/`module_version`.
const std::initializer_list<std::string_view> kCommonPipelineMembers = {
    "pipeline_id",
    "description",
    "enabled",
    "priority",
    "global_timeout_ms",
    "max_retries",
    "error_handling",
    "retry_config",
    "dead_letter_config",
    "circuit_breaker",
    "allowed_output_topics",
    "configuration",
    "mode",
    "source_topic",
    "destination_topic",
    "start_from",
    "error_topic",
};
const std::initializer_list<std::string_view> kStagedFormMembers = {"name", "stages"};
const std::initializer_list<std::string_view> kSingleModuleFormMembers = {
    "pipeline_name", "module_name", "module_version"};
const std::initializer_list<std::string_view> kStageMembers = {
    "priority",           "modules",           "parallel_execution",
    "stage_timeout_ms",   "continue_on_error", "max_concurrent_modules",
    "execution_strategy",
};
const std::initializer_list<std::string_view> kModuleMembers = {
    "module_id", "instance_config", "topic_filters", "conditional_rules"};
const std::initializer_list<std::string_view> kInstanceConfigMembers = {
    "memory_limit_bytes", "execution_timeout_ms", "max_concurrent_instances",
    "enable_caching",     "cache_ttl_seconds",    "custom_config",
};
const std::initializer_list<std::string_view> kFilterMembers = {"filter_type", "pattern",
                                                                "case_sensitive", "negate"};
const std::initializer_list<std::string_view> kRuleMembers = {"condition_type", "field_path",
                                                              "operator", "value", "negate"};
const std::initializer_list<std::string_view> kRetryConfigMembers = {
    "max_retries", "initial_delay_ms", "max_delay_ms", "backoff_multiplier", "jitter"};
const std::initializer_list<std::string_view> kDeadLetterMembers = {
    "topic_prefix", "include_error_context", "max_message_size"};
const std::initializer_list<std::string_view> kCircuitBreakerMembers = {"failure_threshold",
                                                                        "open_ms"};
const std::initializer_list<std::string_view> kConfigurationMembers = {
    "timeout_ms", "batch_size", "processing_mode", "retry_policy"};
const std::initializer_list<std::string_view> kRetryPolicyMembers = {"max_retries", "backoff_ms"};
constexpr std::array<std::string_view, 2> kProcessingModes = {"single_message", "batch"};

bool contains(std::initializer_list<std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `text` cut to at most `limit` bytes, not inside a UTF-8 sequence.
std::string shorten(std::string text, size_t limit = kMaxShownValue) {
  if (text.size() <= limit) return text;
  size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

// The shortest text that reads back as `number` ("0.5", not Boost.JSON's "5E-1").
std::string format_double(double number) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), number);
  return ec == std::errc() ? std::string(text, end) : json::serialize(json::value(number));
}

// How a wrong value is shown in a message: on one line, shortened.
std::string describe(const json::value& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  if (value.is_double()) return format_double(value.get_double());
  return shorten(json::serialize(value));
}

std::string quoted(std::string_view text) { return shorten(json::serialize(json::string(text))); }

// "parent.key", or parent["key"] when the key would not read as a plain name.
std::string member_path(const std::string& parent, std::string_view key) {
  bool plain =
      !key.empty() && key.size() <= kMaxIdLength &&
      std::all_of(key.begin(), key.end(), [](char c) { return is_id_char(c) && c != '.'; });
  if (!plain) return parent + "[" + quoted(key) + "]";
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

// The name part of a module id: "name" of "name-vX.Y.Z", or the whole id when it has no
// version suffix.
std::string_view module_name_of(std::string_view module_id) {
  for (size_t dash = module_id.rfind("-v"); dash != std::string_view::npos && dash > 0;
       dash = module_id.rfind("-v", dash - 1)) {
    if (SemVer::parse(module_id.substr(dash + 2)).is_ok()) return module_id.substr(0, dash);
  }
  return module_id;
}

// RE2's error text quotes the pattern: kept on one line and bounded in a message.
std::string printable_error(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  constexpr size_t kMaxShownError = 200;
  return shorten(std::move(text), kMaxShownError);
}

// Why `pattern` does not compile with RE2 (case-insensitively too when asked), or nullopt.
std::optional<std::string> regex_problem(const std::string& pattern, bool case_sensitive) {
  RE2::Options options(RE2::Quiet);
  RE2 re(pattern, options);
  if (!re.ok()) return printable_error(re.error());
  if (!case_sensitive) {
    options.set_case_sensitive(false);
    RE2 folded(pattern, options);
    if (!folded.ok()) return printable_error(folded.error());
  }
  return std::nullopt;
}

// Reads one document, keeping the first failure. Every read_* returns false once it failed.
class DocumentReader {
 public:
  Status take_error() { return std::move(error_); }

  bool read_pipeline(const json::value& document, std::string_view generated_id,
                     PipelineSpec* out) {
    const json::object* object = document.if_object();
    if (object == nullptr) return fail("", "expected a JSON object, got " + describe(document));
    const json::value* single_module_key = nullptr;
    std::string_view single_module_name;
    for (std::string_view key : kSingleModuleFormMembers) {
      if (const json::value* v = object->if_contains(key); v != nullptr && !single_module_key) {
        single_module_key = v;
        single_module_name = key;
      }
    }
    const bool single_module_form = single_module_key != nullptr;
    for (const auto& member : *object) {
      bool known = contains(kCommonPipelineMembers, member.key()) ||
                   contains(single_module_form ? kSingleModuleFormMembers : kStagedFormMembers,
                            member.key());
      if (known) continue;
      if (single_module_form && contains(kStagedFormMembers, member.key())) {
        return fail(std::string(member.key()), "cannot be combined with " +
                                                   std::string(single_module_name) +
                                                   " (the single-module form of seed 001)");
      }
      return fail(member_path("", member.key()), "unknown field");
    }

    PipelineSpec spec;
    if (!read_id(*object, "pipeline_id", generated_id, &spec.pipeline_id)) return false;
    bool have_error_handling = false;
    if (!read_common(*object, &spec, &have_error_handling)) return false;
    if (single_module_form) {
      if (!read_single_module_form(*object, &spec)) return false;
    } else {
      if (!read_string(*object, "", "name", kMaxNameLength, &spec.name)) return false;
      if (spec.name.empty()) spec.name = spec.pipeline_id;
      if (!read_stages(*object, &spec)) return false;
    }
    if (!check_mode(*object, single_module_form, &spec)) return false;
    if (spec.retry_config && !have_error_handling && configuration_has_retry_policy(*object)) {
      spec.error_handling = ErrorHandling::kRetryWithBackoff;
    }
    *out = std::move(spec);
    return true;
  }

 private:
  bool fail(std::string path, std::string_view what) {
    std::string message = path.empty() ? std::string(what) : path + ": " + std::string(what);
    error_ = Status(StatusCode::kInvalidArgument, std::move(message), std::move(path));
    return false;
  }

  // Refuses members of `object` outside `known`.
  bool check_members(const json::object& object, const std::string& path,
                     std::initializer_list<std::string_view> known) {
    for (const auto& member : object) {
      if (!contains(known, member.key())) {
        return fail(member_path(path, member.key()), "unknown field");
      }
    }
    return true;
  }

  bool required(const json::object& object, const std::string& parent, std::string_view key,
                const json::value** value) {
    *value = object.if_contains(key);
    if (*value == nullptr) return fail(member_path(parent, key), "required");
    return true;
  }

  // An optional object member; *object stays null when absent (or null, when `null_is_absent`).
  bool read_object(const json::object& parent_object, const std::string& parent,
                   std::string_view key, bool null_is_absent, const json::object** object) {
    *object = nullptr;
    const json::value* value = parent_object.if_contains(key);
    if (value == nullptr || (null_is_absent && value->is_null())) return true;
    *object = value->if_object();
    if (*object == nullptr) {
      return fail(member_path(parent, key), "expected an object, got " + describe(*value));
    }
    return true;
  }

  bool read_array(const json::value& value, const std::string& path, size_t max_size,
                  const json::array** array) {
    *array = value.if_array();
    if (*array == nullptr) return fail(path, "expected an array, got " + describe(value));
    if ((*array)->size() > max_size) {
      return fail(path, "expected at most " + std::to_string(max_size) + " entries, got " +
                            std::to_string((*array)->size()));
    }
    return true;
  }

  bool read_bool(const json::object& object, const std::string& parent, std::string_view key,
                 bool* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    if (!value->is_bool()) {
      return fail(member_path(parent, key), "expected true or false, got " + describe(*value));
    }
    *out = value->get_bool();
    return true;
  }

  // A JSON integer in [min, max].
  bool integer_in(const json::value& value, const std::string& path, uint64_t min, uint64_t max,
                  uint64_t* out) {
    auto range = [&] {
      return min == 0 && max == std::numeric_limits<uint64_t>::max()
                 ? std::string("a non-negative integer")
                 : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    };
    uint64_t number = 0;
    if (value.is_uint64()) {
      number = value.get_uint64();
    } else if (value.is_int64() && value.get_int64() >= 0) {
      number = static_cast<uint64_t>(value.get_int64());
    } else {
      return fail(path, "expected " + range() + ", got " + describe(value));
    }
    if (number < min || number > max) {
      return fail(path, "expected " + range() + ", got " + describe(value));
    }
    *out = number;
    return true;
  }

  template <typename T>
  static void assign(T* out, uint64_t number) {
    *out = static_cast<T>(number);
  }
  template <typename T>
  static void assign(std::optional<T>* out, uint64_t number) {
    *out = static_cast<T>(number);
  }

  // An integer member; `Out` is an unsigned integer or an optional one (null = absent then).
  template <typename Out>
  bool read_integer(const json::object& object, const std::string& parent, std::string_view key,
                    uint64_t min, uint64_t max, Out* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    constexpr bool kOptional = !std::is_integral_v<Out>;
    if (kOptional && value->is_null()) return true;
    uint64_t number = 0;
    if (!integer_in(*value, member_path(parent, key), min, max, &number)) return false;
    assign(out, number);
    return true;
  }

  bool read_signed(const json::object& object, const std::string& parent, std::string_view key,
                   int64_t* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    if (value->is_int64()) {
      *out = value->get_int64();
      return true;
    }
    if (value->is_uint64() &&
        value->get_uint64() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *out = static_cast<int64_t>(value->get_uint64());
      return true;
    }
    return fail(member_path(parent, key), "expected an integer, got " + describe(*value));
  }

  bool read_double(const json::object& object, const std::string& parent, std::string_view key,
                   double min, double max, double* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    std::string path = member_path(parent, key);
    auto expected = [&] {
      return "expected a number from " + format_double(min) + " to " + format_double(max) +
             ", got " + describe(*value);
    };
    if (!value->is_number()) return fail(path, expected());
    double number = value->to_number<double>();
    if (!std::isfinite(number) || number < min || number > max) return fail(path, expected());
    *out = number;
    return true;
  }

  // A string member of at most `max_length` bytes. Absent leaves *out as it is; present, it
  // must not be empty.
  template <typename Out>
  bool read_string(const json::object& object, const std::string& parent, std::string_view key,
                   size_t max_length, Out* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    constexpr bool kOptional = !std::is_same_v<Out, std::string>;
    if (kOptional && value->is_null()) return true;
    return string_in(*value, member_path(parent, key), max_length, out);
  }

  template <typename Out>
  bool string_in(const json::value& value, const std::string& path, size_t max_length, Out* out) {
    const json::string* text = value.if_string();
    if (text == nullptr || text->empty()) {
      return fail(path, "expected a non-empty string, got " + describe(value));
    }
    if (text->size() > max_length) {
      return fail(path, "expected at most " + std::to_string(max_length) + " bytes, got " +
                            std::to_string(text->size()));
    }
    *out = std::string(*text);
    return true;
  }

  template <typename E>
  bool enum_in(const json::value& value, const std::string& path, NameTable<E> table, E* out) {
    if (const json::string* text = value.if_string()) {
      for (const auto& [name, entry] : table) {
        if (*text == name) {
          *out = entry;
          return true;
        }
      }
    }
    std::string names;
    for (const auto& [name, entry] : table) {
      names += names.empty() ? "" : ", ";
      names += name;
    }
    return fail(path, "expected one of " + names + ", got " + describe(value));
  }

  template <typename E>
  bool read_enum(const json::object& object, const std::string& parent, std::string_view key,
                 NameTable<E> table, E* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    return enum_in(*value, member_path(parent, key), table, out);
  }

  // 1-128 of [A-Za-z0-9._-], not starting with '.': ids become file names (<id>.json), which
  // would be hidden, and "." and ".." are no names.
  bool check_id(const std::string& id, const std::string& path, std::string_view what) {
    if (id.empty() || id.size() > kMaxIdLength || !std::all_of(id.begin(), id.end(), is_id_char)) {
      return fail(path, "expected " + std::string(what) + " of 1-" + std::to_string(kMaxIdLength) +
                            " characters [A-Za-z0-9._-], got " + quoted(id));
    }
    if (id[0] == '.') {
      return fail(path,
                  "expected " + std::string(what) + " not starting with '.', got " + quoted(id));
    }
    return true;
  }

  bool read_id(const json::object& object, std::string_view key, std::string_view generated_id,
               std::string* out) {
    if (const json::value* value = object.if_contains(key)) {
      if (!string_in(*value, std::string(key), kMaxIdLength * 4, out)) return false;
    } else if (generated_id.empty()) {
      return fail(std::string(key), "required");
    } else {
      *out = std::string(generated_id);
    }
    return check_id(*out, std::string(key), "an id");
  }

  bool check_topic(const std::string& topic, const std::string& path) {
    if (topic.empty() || topic.size() > kMaxTopicLength ||
        !std::all_of(topic.begin(), topic.end(), is_id_char)) {
      return fail(path, "expected a topic name of 1-" + std::to_string(kMaxTopicLength) +
                            " characters [A-Za-z0-9._-], got " + quoted(topic));
    }
    return true;
  }

  bool read_topic(const json::object& object, const std::string& parent, std::string_view key,
                  std::string* out) {
    if (!object.contains(key)) return true;
    if (!read_string(object, parent, key, kMaxTopicLength * 4, out)) return false;
    return check_topic(*out, member_path(parent, key));
  }

  // The members both forms share: everything but the name and the stages.
  bool read_common(const json::object& object, PipelineSpec* spec, bool* have_error_handling) {
    if (!read_string(object, "", "description", kMaxDescriptionLength, &spec->description) ||
        !read_bool(object, "", "enabled", &spec->enabled) ||
        !read_signed(object, "", "priority", &spec->priority) ||
        !read_integer(object, "", "global_timeout_ms", 1, kMaxTimeoutMs,
                      &spec->global_timeout_ms) ||
        !read_integer(object, "", "max_retries", 0, kMaxRetries, &spec->max_retries) ||
        !read_enum(object, "", "error_handling", kErrorHandlings, &spec->error_handling)) {
      return false;
    }
    *have_error_handling = object.contains("error_handling");
    if (!read_retry_config(object, spec) || !read_dead_letter_config(object, spec) ||
        !read_circuit_breaker(object, spec) || !read_allowed_output_topics(object, spec) ||
        !read_configuration(object, spec)) {
      return false;
    }
    return read_enum(object, "", "mode", kModes, &spec->mode) &&
           read_topic(object, "", "source_topic", &spec->source_topic) &&
           read_topic(object, "", "destination_topic", &spec->destination_topic) &&
           read_start_from(object, spec) &&
           read_topic(object, "", "error_topic", &spec->error_topic);
  }

  bool read_retry_config(const json::object& object, PipelineSpec* spec) {
    const json::object* retry = nullptr;
    if (!read_object(object, "", "retry_config", true, &retry)) return false;
    if (retry == nullptr) return true;
    const std::string path = "retry_config";
    RetryConfig config;
    // pipelines.md: "up to max_retries (or retry_config.max_retries)": without its own count, the
    // retry_config takes the pipeline's.
    config.max_retries = spec->max_retries;
    if (!check_members(*retry, path, kRetryConfigMembers) ||
        !read_integer(*retry, path, "max_retries", 0, kMaxRetries, &config.max_retries) ||
        !read_integer(*retry, path, "initial_delay_ms", 0, kMaxTimeoutMs,
                      &config.initial_delay_ms) ||
        !read_integer(*retry, path, "max_delay_ms", 0, kMaxTimeoutMs, &config.max_delay_ms) ||
        !read_double(*retry, path, "backoff_multiplier", 1.0, kMaxBackoffMultiplier,
                     &config.backoff_multiplier) ||
        !read_bool(*retry, path, "jitter", &config.jitter)) {
      return false;
    }
    if (config.max_delay_ms < config.initial_delay_ms) {
      return fail("retry_config.max_delay_ms", "expected at least initial_delay_ms (" +
                                                   std::to_string(config.initial_delay_ms) +
                                                   "), got " + std::to_string(config.max_delay_ms));
    }
    spec->retry_config = config;
    return true;
  }

  bool read_dead_letter_config(const json::object& object, PipelineSpec* spec) {
    const json::object* dead_letter = nullptr;
    if (!read_object(object, "", "dead_letter_config", true, &dead_letter)) return false;
    if (dead_letter == nullptr) return true;
    const std::string path = "dead_letter_config";
    DeadLetterConfig config;
    if (!check_members(*dead_letter, path, kDeadLetterMembers) ||
        !read_topic(*dead_letter, path, "topic_prefix", &config.topic_prefix) ||
        !read_bool(*dead_letter, path, "include_error_context", &config.include_error_context) ||
        !read_integer(*dead_letter, path, "max_message_size", 1, kMaxDeadLetterMessageSize,
                      &config.max_message_size)) {
      return false;
    }
    // Dead letters of topic T go to "<prefix>.T", a topic name of at most 249 characters.
    if (config.topic_prefix.size() + 2 > kMaxTopicLength) {
      return fail(path + ".topic_prefix",
                  "a prefix of " + std::to_string(config.topic_prefix.size()) +
                      " characters leaves no room for \".<topic>\" in a topic name of at most " +
                      std::to_string(kMaxTopicLength) + " characters");
    }
    spec->dead_letter_config = config;
    return true;
  }

  bool read_circuit_breaker(const json::object& object, PipelineSpec* spec) {
    const json::object* breaker = nullptr;
    if (!read_object(object, "", "circuit_breaker", false, &breaker)) return false;
    if (breaker == nullptr) return true;
    const std::string path = "circuit_breaker";
    return check_members(*breaker, path, kCircuitBreakerMembers) &&
           read_integer(*breaker, path, "failure_threshold", 1, kMaxFailureThreshold,
                        &spec->circuit_breaker.failure_threshold) &&
           read_integer(*breaker, path, "open_ms", 1, kMaxTimeoutMs,
                        &spec->circuit_breaker.open_ms);
  }

  // Globs over topic names: [A-Za-z0-9._-] plus * and ?.
  bool read_allowed_output_topics(const json::object& object, PipelineSpec* spec) {
    const json::value* value = object.if_contains("allowed_output_topics");
    if (value == nullptr) return true;
    const std::string path = "allowed_output_topics";
    const json::array* globs = nullptr;
    if (!read_array(*value, path, kMaxAllowedOutputTopics, &globs)) return false;
    for (size_t i = 0; i < globs->size(); ++i) {
      std::string glob;
      std::string glob_path = index_path(path, i);
      if (!string_in((*globs)[i], glob_path, kMaxTopicLength, &glob)) return false;
      if (!std::all_of(glob.begin(), glob.end(),
                       [](char c) { return is_id_char(c) || c == '*' || c == '?'; })) {
        return fail(glob_path, "expected a glob of topic characters [A-Za-z0-9._-] and * ?, got " +
                                   quoted(glob));
      }
      spec->allowed_output_topics.push_back(std::move(glob));
    }
    return true;
  }

  static bool configuration_has_retry_policy(const json::object& object) {
    const json::value* configuration = object.if_contains("configuration");
    return configuration != nullptr && configuration->is_object() &&
           configuration->get_object().contains("retry_policy");
  }

  bool read_configuration(const json::object& object, PipelineSpec* spec) {
    const json::object* configuration = nullptr;
    if (!read_object(object, "", "configuration", false, &configuration)) return false;
    if (configuration == nullptr) return true;
    const std::string path = "configuration";
    PipelineTuning& tuning = spec->configuration;
    if (!check_members(*configuration, path, kConfigurationMembers) ||
        !read_integer(*configuration, path, "timeout_ms", 1, kMaxTimeoutMs, &tuning.timeout_ms) ||
        !read_integer(*configuration, path, "batch_size", 1, kMaxBatchSize, &tuning.batch_size)) {
      return false;
    }
    if (const json::value* mode = configuration->if_contains("processing_mode")) {
      const json::string* text = mode->if_string();
      if (text == nullptr || std::find(kProcessingModes.begin(), kProcessingModes.end(),
                                       std::string_view(*text)) == kProcessingModes.end()) {
        return fail("configuration.processing_mode",
                    "expected one of single_message, batch, got " + describe(*mode));
      }
      tuning.processing_mode = std::string(*text);
    }
    const json::object* policy = nullptr;
    if (!read_object(*configuration, path, "retry_policy", false, &policy)) return false;
    if (policy == nullptr) return true;
    const std::string policy_path = "configuration.retry_policy";
    if (spec->retry_config) {
      return fail(policy_path, "cannot be combined with retry_config");
    }
    RetryConfig retry;
    if (!check_members(*policy, policy_path, kRetryPolicyMembers) ||
        !read_integer(*policy, policy_path, "max_retries", 0, kMaxRetries, &retry.max_retries) ||
        !read_integer(*policy, policy_path, "backoff_ms", 0, kMaxTimeoutMs,
                      &retry.initial_delay_ms)) {
      return false;
    }
    retry.max_delay_ms = std::max(retry.max_delay_ms, retry.initial_delay_ms);
    spec->retry_config = retry;
    return true;
  }

  // "earliest" | "latest" | "<offset>" | "@<timestamp_ms>"; a JSON integer is an offset.
  bool read_start_from(const json::object& object, PipelineSpec* spec) {
    const json::value* value = object.if_contains("start_from");
    if (value == nullptr) return true;
    const std::string path = "start_from";
    auto expected = [&] {
      return fail(path,
                  "expected \"earliest\", \"latest\", an offset or \"@<timestamp_ms>\", got " +
                      describe(*value));
    };
    if (value->is_int64() || value->is_uint64()) {
      uint64_t offset = 0;
      if (!integer_in(*value, path, 0, std::numeric_limits<int64_t>::max(), &offset)) {
        return false;
      }
      spec->start_from = std::to_string(offset);
      return true;
    }
    const json::string* text = value->if_string();
    if (text == nullptr) return expected();
    std::string_view start(*text);
    if (start != "earliest" && start != "latest") {
      std::string_view digits = start.starts_with('@') ? start.substr(1) : start;
      if (digits.empty() || digits.size() > 18 ||
          !std::all_of(digits.begin(), digits.end(), is_digit)) {
        return expected();
      }
    }
    spec->start_from = std::string(start);
    return true;
  }

  // The seed 001 form: one stage of one module, a stream pipeline.
  bool read_single_module_form(const json::object& object, PipelineSpec* spec) {
    if (!read_string(object, "", "pipeline_name", kMaxNameLength, &spec->name)) return false;
    if (spec->name.empty()) spec->name = spec->pipeline_id;
    const json::value* module_name = nullptr;
    std::string module_id;
    if (!required(object, "", "module_name", &module_name) ||
        !string_in(*module_name, "module_name", kMaxIdLength * 4, &module_id) ||
        !check_id(module_id, "module_name", "a module name")) {
      return false;
    }
    if (const json::value* version = object.if_contains("module_version")) {
      std::string text;
      if (!string_in(*version, "module_version", kMaxIdLength, &text)) return false;
      if (auto version = SemVer::parse(text); !version.is_ok()) {
        return fail("module_version", version.status().message());
      }
      if (module_name_of(module_id) != module_id) {
        return fail("module_version",
                    "module_name " + quoted(module_id) + " already carries a version");
      }
      module_id += "-v" + text;
    }
    if (!object.contains("mode")) spec->mode = PipelineMode::kStream;
    ModuleSpec module;
    module.module_id = std::move(module_id);
    StageSpec stage;
    stage.modules.push_back(std::move(module));
    spec->stages.push_back(std::move(stage));
    return true;
  }

  bool check_mode(const json::object& object, bool single_module_form, PipelineSpec* spec) {
    if (spec->mode == PipelineMode::kStream) {
      if (spec->source_topic.empty()) {
        return fail("source_topic", "required for a stream pipeline");
      }
      if (spec->destination_topic.empty()) {
        return fail("destination_topic", "required for a stream pipeline");
      }
      if (spec->destination_topic == spec->source_topic) {
        return fail("destination_topic",
                    "must differ from source_topic (" + quoted(spec->source_topic) + ")");
      }
      // The one topic a stream pipeline reads is known: its dead-letter topic must be a name.
      if (const auto& dead_letter = spec->dead_letter_config) {
        const size_t length = dead_letter->topic_prefix.size() + 1 + spec->source_topic.size();
        if (length > kMaxTopicLength) {
          return fail("dead_letter_config.topic_prefix",
                      "the dead-letter topic \"" + dead_letter->topic_prefix + "." +
                          spec->source_topic + "\" would be " + std::to_string(length) +
                          " characters, more than " + std::to_string(kMaxTopicLength));
        }
      }
      return true;
    }
    if (single_module_form) {
      return fail("mode",
                  "the single-module form of seed 001 is a stream pipeline: expected "
                  "\"stream\", got \"inline\"");
    }
    for (std::string_view key : {"source_topic", "destination_topic", "start_from"}) {
      if (object.contains(key)) {
        return fail(std::string(key), "only for stream pipelines (\"mode\": \"stream\")");
      }
    }
    if (spec->stages.empty()) return fail("stages", "expected at least one stage");
    return true;
  }

  bool read_stages(const json::object& object, PipelineSpec* spec) {
    const json::value* value = nullptr;
    const json::array* stages = nullptr;
    if (!required(object, "", "stages", &value) ||
        !read_array(*value, "stages", kMaxStages, &stages)) {
      return false;
    }
    std::map<uint32_t, size_t> index_by_priority;
    for (size_t i = 0; i < stages->size(); ++i) {
      StageSpec stage;
      std::string path = index_path("stages", i);
      if (!read_stage((*stages)[i], path, &stage)) return false;
      auto [it, inserted] = index_by_priority.emplace(stage.priority, i);
      if (!inserted) {
        return fail(path + ".priority", std::to_string(stage.priority) + " duplicates " +
                                            index_path("stages", it->second));
      }
      spec->stages.push_back(std::move(stage));
    }
    std::stable_sort(
        spec->stages.begin(), spec->stages.end(),
        [](const StageSpec& a, const StageSpec& b) { return a.priority < b.priority; });
    return true;
  }

  bool read_stage(const json::value& value, const std::string& path, StageSpec* stage) {
    const json::object* object = value.if_object();
    if (object == nullptr) return fail(path, "expected an object, got " + describe(value));
    const json::value* priority = nullptr;
    uint64_t priority_number = 0;
    if (!check_members(*object, path, kStageMembers) ||
        !required(*object, path, "priority", &priority) ||
        !integer_in(*priority, path + ".priority", 0, std::numeric_limits<uint32_t>::max(),
                    &priority_number) ||
        !read_bool(*object, path, "parallel_execution", &stage->parallel_execution) ||
        !read_integer(*object, path, "stage_timeout_ms", 1, kMaxTimeoutMs,
                      &stage->stage_timeout_ms) ||
        !read_bool(*object, path, "continue_on_error", &stage->continue_on_error) ||
        !read_integer(*object, path, "max_concurrent_modules", 1, kMaxConcurrency,
                      &stage->max_concurrent_modules) ||
        !read_string(*object, path, "execution_strategy", kMaxExecutionStrategyLength,
                     &stage->execution_strategy)) {
      return false;
    }
    stage->priority = static_cast<uint32_t>(priority_number);
    const json::value* modules_value = nullptr;
    const json::array* modules = nullptr;
    const std::string modules_path = path + ".modules";
    if (!required(*object, path, "modules", &modules_value) ||
        !read_array(*modules_value, modules_path, kMaxModulesPerStage, &modules)) {
      return false;
    }
    if (modules->empty()) return fail(modules_path, "expected at least one module");
    for (size_t i = 0; i < modules->size(); ++i) {
      ModuleSpec module;
      if (!read_module((*modules)[i], index_path(modules_path, i), &module)) return false;
      stage->modules.push_back(std::move(module));
    }
    return true;
  }

  bool read_module(const json::value& value, const std::string& path, ModuleSpec* module) {
    const json::object* object = value.if_object();
    if (object == nullptr) return fail(path, "expected an object, got " + describe(value));
    const json::value* id = nullptr;
    const std::string id_path = path + ".module_id";
    if (!check_members(*object, path, kModuleMembers) ||
        !required(*object, path, "module_id", &id) ||
        !string_in(*id, id_path, kMaxIdLength * 4, &module->module_id)) {
      return false;
    }
    // The name part follows the id rule; a version suffix may make the whole id longer.
    const std::string& module_id = module->module_id;
    if (module_id.size() > 2 * kMaxIdLength ||
        !std::all_of(module_id.begin(), module_id.end(), is_id_char) ||
        module_name_of(module_id).size() > kMaxIdLength) {
      return fail(id_path, "expected \"name\" or \"name-vX.Y.Z\" with a name of 1-" +
                               std::to_string(kMaxIdLength) + " characters [A-Za-z0-9._-], got " +
                               quoted(module_id));
    }
    if (!read_instance_config(*object, path, &module->instance_config)) return false;
    if (const json::value* filters_value = object->if_contains("topic_filters")) {
      const json::array* filters = nullptr;
      const std::string filters_path = path + ".topic_filters";
      if (!read_array(*filters_value, filters_path, kMaxTopicFilters, &filters)) return false;
      for (size_t i = 0; i < filters->size(); ++i) {
        TopicFilterSpec filter;
        if (!read_filter((*filters)[i], index_path(filters_path, i), &filter)) return false;
        module->topic_filters.push_back(std::move(filter));
      }
    }
    if (const json::value* rules_value = object->if_contains("conditional_rules")) {
      const json::array* rules = nullptr;
      const std::string rules_path = path + ".conditional_rules";
      if (!read_array(*rules_value, rules_path, kMaxConditionalRules, &rules)) return false;
      for (size_t i = 0; i < rules->size(); ++i) {
        ConditionalRuleSpec rule;
        if (!read_rule((*rules)[i], index_path(rules_path, i), &rule)) return false;
        module->conditional_rules.push_back(std::move(rule));
      }
    }
    return true;
  }

  bool read_instance_config(const json::object& module, const std::string& module_path,
                            InstanceConfig* config) {
    const json::object* object = nullptr;
    if (!read_object(module, module_path, "instance_config", false, &object)) return false;
    if (object == nullptr) return true;
    const std::string path = module_path + ".instance_config";
    if (!check_members(*object, path, kInstanceConfigMembers) ||
        !read_integer(*object, path, "memory_limit_bytes", kMinMemoryLimitBytes,
                      kMaxMemoryLimitBytes, &config->memory_limit_bytes) ||
        !read_integer(*object, path, "execution_timeout_ms", 1, kMaxTimeoutMs,
                      &config->execution_timeout_ms) ||
        !read_integer(*object, path, "max_concurrent_instances", 1, kMaxConcurrency,
                      &config->max_concurrent_instances) ||
        !read_bool(*object, path, "enable_caching", &config->enable_caching) ||
        !read_integer(*object, path, "cache_ttl_seconds", 0, kMaxCacheTtlSeconds,
                      &config->cache_ttl_seconds)) {
      return false;
    }
    if (const json::value* custom = object->if_contains("custom_config")) {
      config->custom_config = *custom;
    }
    return true;
  }

  bool read_filter(const json::value& value, const std::string& path, TopicFilterSpec* filter) {
    const json::object* object = value.if_object();
    if (object == nullptr) return fail(path, "expected an object, got " + describe(value));
    const json::value* type = nullptr;
    const json::value* pattern = nullptr;
    const std::string pattern_path = path + ".pattern";
    if (!check_members(*object, path, kFilterMembers) ||
        !required(*object, path, "filter_type", &type) ||
        !enum_in(*type, path + ".filter_type", kFilterTypes, &filter->filter_type) ||
        !required(*object, path, "pattern", &pattern) ||
        !string_in(*pattern, pattern_path, kMaxPatternLength, &filter->pattern) ||
        !read_bool(*object, path, "case_sensitive", &filter->case_sensitive) ||
        !read_bool(*object, path, "negate", &filter->negate)) {
      return false;
    }
    if (filter->filter_type == FilterType::kRegex) {
      if (auto problem = regex_problem(filter->pattern, filter->case_sensitive)) {
        return fail(pattern_path, "invalid regex: " + *problem);
      }
    }
    return true;
  }

  bool read_rule(const json::value& value, const std::string& path, ConditionalRuleSpec* rule) {
    const json::object* object = value.if_object();
    if (object == nullptr) return fail(path, "expected an object, got " + describe(value));
    const json::value* type = nullptr;
    const json::value* op = nullptr;
    const json::value* rule_value = nullptr;
    if (!check_members(*object, path, kRuleMembers) ||
        !required(*object, path, "condition_type", &type) ||
        !enum_in(*type, path + ".condition_type", kConditionTypes, &rule->condition_type)) {
      return false;
    }
    const std::string field_path_path = path + ".field_path";
    const bool needs_field_path = rule->condition_type == ConditionType::kHeaderValue ||
                                  rule->condition_type == ConditionType::kPayloadField;
    if (const json::value* field_path = object->if_contains("field_path")) {
      if (needs_field_path) {
        if (!string_in(*field_path, field_path_path, kMaxFieldPathLength, &rule->field_path)) {
          return false;
        }
      } else if (const json::string* text = field_path->if_string();
                 text != nullptr && text->size() <= kMaxFieldPathLength) {
        rule->field_path = std::string(*text);  // ignored for MessageSize and MessageAge
      } else {
        return fail(field_path_path,
                    "expected a string (ignored for " +
                        std::string(name_in(kConditionTypes, rule->condition_type)) + "), got " +
                        describe(*field_path));
      }
    } else if (needs_field_path) {
      return fail(field_path_path, "required");
    }
    if (rule->condition_type == ConditionType::kPayloadField) {
      if (auto steps = parse_json_path(rule->field_path); !steps.is_ok()) {
        return fail(field_path_path, steps.status().message());
      }
    }
    const std::string value_path = path + ".value";
    if (!required(*object, path, "operator", &op) ||
        !enum_in(*op, path + ".operator", kOperators, &rule->op) ||
        !required(*object, path, "value", &rule_value) ||
        !read_bool(*object, path, "negate", &rule->negate)) {
      return false;
    }
    if (!rule_value->is_string() && !rule_value->is_number() && !rule_value->is_bool()) {
      return fail(value_path, "expected a string, number or boolean, got " + describe(*rule_value));
    }
    if (rule_value->is_double() && !std::isfinite(rule_value->get_double())) {
      return fail(value_path, "expected a finite number, got " + describe(*rule_value));
    }
    if (rule->op == Operator::kMatches) {
      const json::string* pattern = rule_value->if_string();
      if (pattern == nullptr || pattern->empty() || pattern->size() > kMaxPatternLength) {
        return fail(value_path, "Matches expects an RE2 pattern as a non-empty string, got " +
                                    describe(*rule_value));
      }
      if (auto problem = regex_problem(std::string(*pattern), true)) {
        return fail(value_path, "invalid regex: " + *problem);
      }
    }
    if ((rule->condition_type == ConditionType::kMessageSize ||
         rule->condition_type == ConditionType::kMessageAge) &&
        !rule_value->is_number()) {
      return fail(value_path, std::string(name_in(kConditionTypes, rule->condition_type)) +
                                  " compares with a number, got " + describe(*rule_value));
    }
    rule->value = *rule_value;
    return true;
  }

  Status error_;
};

// A double as JSON: integral values as integers ("2" rather than "2E0"), which read back equal.
json::value number_value(double number) {
  if (std::trunc(number) == number && std::fabs(number) < 1e15) {
    return json::value(static_cast<int64_t>(number));
  }
  return json::value(number);
}

json::object module_to_json(const ModuleSpec& module) {
  json::object out;
  out["module_id"] = module.module_id;
  json::array filters;
  for (const TopicFilterSpec& filter : module.topic_filters) {
    filters.push_back(json::object{
        {"filter_type", filter_type_name(filter.filter_type)},
        {"pattern", filter.pattern},
        {"case_sensitive", filter.case_sensitive},
        {"negate", filter.negate},
    });
  }
  out["topic_filters"] = std::move(filters);
  json::array rules;
  for (const ConditionalRuleSpec& rule : module.conditional_rules) {
    rules.push_back(json::object{
        {"condition_type", condition_type_name(rule.condition_type)},
        {"field_path", rule.field_path},
        {"operator", operator_name(rule.op)},
        {"value", rule.value},
        {"negate", rule.negate},
    });
  }
  out["conditional_rules"] = std::move(rules);
  const InstanceConfig& config = module.instance_config;
  json::object instance;
  if (config.memory_limit_bytes) instance["memory_limit_bytes"] = *config.memory_limit_bytes;
  if (config.execution_timeout_ms) instance["execution_timeout_ms"] = *config.execution_timeout_ms;
  if (config.max_concurrent_instances) {
    instance["max_concurrent_instances"] = *config.max_concurrent_instances;
  }
  instance["enable_caching"] = config.enable_caching;
  instance["cache_ttl_seconds"] = config.cache_ttl_seconds;
  if (!config.custom_config.is_null()) instance["custom_config"] = config.custom_config;
  out["instance_config"] = std::move(instance);
  return out;
}

json::object stage_to_json(const StageSpec& stage) {
  json::object out;
  out["priority"] = stage.priority;
  out["parallel_execution"] = stage.parallel_execution;
  out["continue_on_error"] = stage.continue_on_error;
  if (stage.stage_timeout_ms) out["stage_timeout_ms"] = *stage.stage_timeout_ms;
  if (stage.max_concurrent_modules) out["max_concurrent_modules"] = *stage.max_concurrent_modules;
  if (!stage.execution_strategy.empty()) out["execution_strategy"] = stage.execution_strategy;
  json::array modules;
  for (const ModuleSpec& module : stage.modules) modules.push_back(module_to_json(module));
  out["modules"] = std::move(modules);
  return out;
}

}  // namespace

Status parse_pipeline(const boost::json::value& document, std::string_view generated_id,
                      PipelineSpec* out) {
  DocumentReader reader;
  if (reader.read_pipeline(document, generated_id, out)) return Status::ok();
  return reader.take_error();
}

boost::json::object pipeline_to_json(const PipelineSpec& pipeline) {
  json::object out;
  out["pipeline_id"] = pipeline.pipeline_id;
  out["name"] = pipeline.name;
  if (pipeline.description) out["description"] = *pipeline.description;
  out["enabled"] = pipeline.enabled;
  out["priority"] = pipeline.priority;
  out["mode"] = pipeline_mode_name(pipeline.mode);
  if (pipeline.mode == PipelineMode::kStream) {
    out["source_topic"] = pipeline.source_topic;
    out["destination_topic"] = pipeline.destination_topic;
    out["start_from"] = pipeline.start_from;
  }
  if (!pipeline.error_topic.empty()) out["error_topic"] = pipeline.error_topic;
  out["global_timeout_ms"] = pipeline.global_timeout_ms;
  out["max_retries"] = pipeline.max_retries;
  out["error_handling"] = error_handling_name(pipeline.error_handling);
  if (const auto& retry = pipeline.retry_config) {
    out["retry_config"] = json::object{
        {"max_retries", retry->max_retries},
        {"initial_delay_ms", retry->initial_delay_ms},
        {"max_delay_ms", retry->max_delay_ms},
        {"backoff_multiplier", number_value(retry->backoff_multiplier)},
        {"jitter", retry->jitter},
    };
  }
  if (const auto& dead_letter = pipeline.dead_letter_config) {
    out["dead_letter_config"] = json::object{
        {"topic_prefix", dead_letter->topic_prefix},
        {"include_error_context", dead_letter->include_error_context},
        {"max_message_size", dead_letter->max_message_size},
    };
  }
  out["circuit_breaker"] = json::object{
      {"failure_threshold", pipeline.circuit_breaker.failure_threshold},
      {"open_ms", pipeline.circuit_breaker.open_ms},
  };
  json::array globs;
  for (const std::string& glob : pipeline.allowed_output_topics) globs.push_back(json::value(glob));
  out["allowed_output_topics"] = std::move(globs);
  const PipelineTuning& tuning = pipeline.configuration;
  if (tuning.timeout_ms || tuning.batch_size || !tuning.processing_mode.empty()) {
    json::object configuration;
    if (tuning.timeout_ms) configuration["timeout_ms"] = *tuning.timeout_ms;
    if (tuning.batch_size) configuration["batch_size"] = *tuning.batch_size;
    if (!tuning.processing_mode.empty()) configuration["processing_mode"] = tuning.processing_mode;
    out["configuration"] = std::move(configuration);
  }
  json::array stages;
  for (const StageSpec& stage : pipeline.stages) stages.push_back(stage_to_json(stage));
  out["stages"] = std::move(stages);
  return out;
}

void merge_patch(boost::json::value& target, const boost::json::value& patch) {
  const json::object* patch_object = patch.if_object();
  if (patch_object == nullptr) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  json::object& object = target.get_object();
  for (const auto& [key, value] : *patch_object) {
    if (value.is_null()) {
      object.erase(key);
      continue;
    }
    json::value& slot = object[key];  // null when new: merging into it starts from scratch
    merge_patch(slot, value);
  }
}

std::string_view filter_type_name(FilterType type) { return name_in(kFilterTypes, type); }

std::string_view condition_type_name(ConditionType type) { return name_in(kConditionTypes, type); }

std::string_view operator_name(Operator op) { return name_in(kOperators, op); }

std::string_view error_handling_name(ErrorHandling strategy) {
  return name_in(kErrorHandlings, strategy);
}

std::string_view pipeline_mode_name(PipelineMode mode) { return name_in(kModes, mode); }

}  // namespace wasmq::etl
