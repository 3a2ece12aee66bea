// The pipeline document (pipelines.md; the seeds' JSON of 000 §5.2 and 003 "Data Model"): the
// data model, its parsing from JSON with validation that names the bad field by its path, and its
// JSON form (for the API and for persistence). A PATCH merges onto that form with
// common/json_merge_patch.h.
//
// TOML `[[etl.pipelines]]` tables reach this room already turned into JSON (cli/config.h), so
// there is one parser for both.
//
// Every spec type compares with == member by member (a changed pipeline is told apart from an
// unchanged one; round trips are checked).
//
// Threads: plain values; any thread.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace wasmq::etl {

enum class FilterType { kExact, kWildcard, kRegex, kPrefix, kSuffix, kContains };

// One topic filter of a module (pipelines.md, "Topic filters").
struct TopicFilterSpec {
  FilterType filter_type = FilterType::kExact;
  std::string pattern;
  bool case_sensitive = true;
  bool negate = false;

  bool operator==(const TopicFilterSpec&) const = default;
};

enum class ConditionType { kHeaderValue, kPayloadField, kMessageSize, kMessageAge };

enum class Operator {
  kEquals,
  kNotEquals,
  kGreaterThan,
  kLessThan,
  kGreaterThanOrEqual,
  kLessThanOrEqual,
  kContains,
  kStartsWith,
  kEndsWith,
  kMatches,
};

// One conditional rule of a module (pipelines.md, "Conditional rules").
struct ConditionalRuleSpec {
  ConditionType condition_type = ConditionType::kHeaderValue;
  std::string field_path;  // header name, or a JSONPath of the subset for PayloadField
  Operator op = Operator::kEquals;
  boost::json::value value;  // a string, number or bool (null is refused by the parser)
  bool negate = false;

  bool operator==(const ConditionalRuleSpec&) const = default;
};

// instance_config: per-module limits; unset fields take the [etl] defaults.
struct InstanceConfig {
  std::optional<uint64_t> memory_limit_bytes;
  std::optional<uint64_t> execution_timeout_ms;
  std::optional<uint32_t> max_concurrent_instances;
  bool enable_caching = false;
  uint64_t cache_ttl_seconds = 300;
  // Passed to init_module as compact JSON; null means none.
  boost::json::value custom_config;

  bool operator==(const InstanceConfig&) const = default;
};

// One module of a stage.
struct ModuleSpec {
  // A full id "name-vX.Y.Z" (pinned) or a bare "name" (follows the newest version).
  std::string module_id;
  InstanceConfig instance_config;
  std::vector<TopicFilterSpec> topic_filters;          // none: every topic; several: any (OR)
  std::vector<ConditionalRuleSpec> conditional_rules;  // all must hold (AND)

  bool operator==(const ModuleSpec&) const = default;
};

struct StageSpec {
  uint32_t priority = 0;  // ascending; unique within a pipeline
  std::vector<ModuleSpec> modules;
  bool parallel_execution = false;
  std::optional<uint64_t> stage_timeout_ms;
  bool continue_on_error = false;
  std::optional<uint32_t> max_concurrent_modules;  // parallel stages only
  std::string execution_strategy;                  // accepted as the seeds show; informative

  bool operator==(const StageSpec&) const = default;
};

enum class ErrorHandling { kStopPipeline, kSkipModule, kRetryWithBackoff, kSendToDeadLetter };

struct RetryConfig {
  uint32_t max_retries = 3;
  uint64_t initial_delay_ms = 100;
  uint64_t max_delay_ms = 5000;
  double backoff_multiplier = 2.0;
  bool jitter = true;

  bool operator==(const RetryConfig&) const = default;
};

struct DeadLetterConfig {
  std::string topic_prefix = "dlq.etl";
  bool include_error_context = true;
  uint64_t max_message_size = 1024 * 1024;

  bool operator==(const DeadLetterConfig&) const = default;
};

struct CircuitBreakerConfig {
  uint32_t failure_threshold = 5;
  uint64_t open_ms = 30000;
  // Whether a module's own `error` result for a message counts as a failure of the module. Off:
  // only traps, timeouts, limits and unusable results do, so a few malformed messages cannot
  // open the breaker and dead-letter the good ones behind them.
  bool count_module_errors = false;

  bool operator==(const CircuitBreakerConfig&) const = default;
};

enum class PipelineMode { kInline, kStream };

// The seed 001 form's `configuration` object.
struct PipelineTuning {
  std::optional<uint64_t> timeout_ms;  // default execution timeout of this pipeline's modules
  std::optional<uint32_t> batch_size;  // most messages per module call for this pipeline
  std::string processing_mode;         // "single_message" | "batch"; informative

  bool operator==(const PipelineTuning&) const = default;
};

struct PipelineSpec {
  std::string pipeline_id;
  std::string name;
  std::optional<std::string> description;
  bool enabled = true;
  int64_t priority = 0;           // pipelines apply in ascending priority, ties by pipeline_id
  std::vector<StageSpec> stages;  // sorted by priority after parsing
  uint64_t global_timeout_ms = 30000;
  uint32_t max_retries = 3;
  ErrorHandling error_handling = ErrorHandling::kSkipModule;
  std::optional<RetryConfig> retry_config;             // max_retries falls back to the above
  std::optional<DeadLetterConfig> dead_letter_config;  // set: SendToDeadLetter has a topic
  CircuitBreakerConfig circuit_breaker;
  std::vector<std::string> allowed_output_topics;  // glob patterns for `wasmq.topic`
  PipelineTuning configuration;

  PipelineMode mode = PipelineMode::kInline;
  std::string source_topic;           // stream mode
  std::string destination_topic;      // stream mode
  std::string start_from = "latest";  // stream: "earliest" | "latest" | "<offset>" | "@<ms>"
  std::string error_topic;            // seed 001 form; overrides [etl] error_topic_prefix

  // The retry count in force: retry_config.max_retries when given, else max_retries.
  uint32_t effective_max_retries() const {
    return retry_config ? retry_config->max_retries : max_retries;
  }

  bool operator==(const PipelineSpec&) const = default;
};

// Bounds parse_pipeline enforces beyond the seeds (documents are hostile until checked).
inline constexpr size_t kMaxStages = 64;
inline constexpr size_t kMaxModulesPerStage = 64;
inline constexpr size_t kMaxTopicFilters = 256;      // per module
inline constexpr size_t kMaxConditionalRules = 256;  // per module
inline constexpr size_t kMaxAllowedOutputTopics = 256;
inline constexpr uint64_t kMaxTimeoutMs = 24ull * 3600 * 1000;  // every *_timeout_ms, delays
inline constexpr size_t kMaxIdLength = 128;                     // pipeline ids and module names
inline constexpr size_t kMaxTopicLength = 249;

// Reads and validates a pipeline document: the seeds' JSON (000 §5.2, 003) or the seed 001 form
// (`pipeline_name`, `source_topic`, `destination_topic`, `module_name`, `module_version`,
// `configuration`), which becomes a stream pipeline with one stage of one module.
// `generated_id` is used when the document has no pipeline_id.
// Checks: unknown fields, types and ranges, enum names, unique stage priorities, non-empty
// module ids, topic names, valid RE2 patterns (Regex filters, Matches rules), the JSONPath
// subset of PayloadField rules, glob patterns.
//
// Where the seeds are silent:
// - Ids: pipeline_id 1-128 of [A-Za-z0-9._-], not starting with '.'; module_id "name" or
// "name-vX.Y.Z" (pinned) with
//   a name of 1-128 of the same characters. Topic names (source, destination, error_topic,
//   dead-letter prefix) are 1-249 of [A-Za-z0-9._-]; allowed_output_topics are globs over the
//   same characters plus * and ?. name <= 256 bytes, description <= 4096.
// - Integer fields take JSON integers only. Ranges: timeouts (global, stage, execution,
//   configuration.timeout_ms, circuit_breaker.open_ms) 1 ms-24 h; retry delays 0-24 h with
//   max_delay_ms >= initial_delay_ms; max_retries 0-100; memory_limit_bytes 64 KiB-4 GiB;
//   max_concurrent_instances / max_concurrent_modules 1-1024; cache_ttl_seconds 0-30 days;
//   backoff_multiplier 1.0-100.0; batch_size 1-65536; failure_threshold 1-1000000; dead-letter
//   max_message_size 1 B-256 MiB; stage priorities 0-UINT32_MAX; pipeline priority any int64.
// - processing_mode is "single_message" or "batch"; execution_strategy any string <= 64 bytes.
// - null stands for "absent" only where the model has an std::optional (description,
//   stage_timeout_ms, instance_config limits, retry_config, ...); a null rule value is refused.
// - Stream fields (source_topic, destination_topic, start_from) are refused on inline pipelines;
//   start_from also takes a JSON integer offset (kept as its decimal text).
// - `configuration.retry_policy` {max_retries, backoff_ms} becomes retry_config (initial_delay_ms
//   = backoff_ms, max_delay_ms raised to it when smaller) and, when error_handling is not given,
//   sets error_handling to RetryWithBackoff; it cannot be combined with retry_config.
// - The seed 001 form is told apart by `pipeline_name`, `module_name` or `module_version`; it
//   takes no `name` or `stages`, needs `module_name`, and its `mode`, if given, must be "stream".
//   Its pipeline_id is `pipeline_id` when present, else `generated_id`.
//
// On failure `*out` is left as it was, and the kInvalidArgument status's field() is the JSON path
// of the bad field ("stages[1].modules[0].topic_filters[0].pattern"; empty for the document as a
// whole); its message says what is wrong, starting with the path ("stages[1]...pattern: invalid
// regex: missing )").
Status parse_pipeline(const boost::json::value& document, std::string_view generated_id,
                      PipelineSpec* out);

// The pipeline_id a document without one gets: its name (`name`, or `pipeline_name` in the seed
// 001 form) made an id: ASCII letters lower-cased, digits, '.' and '_' kept, every other run
// of characters (spaces, '-' among them) one '-', at most kMaxIdLength. Empty when the document has a pipeline_id,
// or no name that leaves an id ("IoT Sensors (v2)" -> "iot-sensors-v2"). Applying the same
// document twice so names the same pipeline, which is replaced, not duplicated.
std::string pipeline_id_from_name(const boost::json::object& document);

// The document form of a pipeline (every field, defaults included), as GET returns it and as
// it is persisted; parse_pipeline(pipeline_to_json(p)) gives p back. It is always the 000/003
// form (`name`, `stages`); stream fields appear only in stream mode, unset optional fields
// (description, stage_timeout_ms, retry_config, ...) are left out.
boost::json::object pipeline_to_json(const PipelineSpec& pipeline);

// Enum names as the documents spell them.
std::string_view filter_type_name(FilterType type);
std::string_view condition_type_name(ConditionType type);
std::string_view operator_name(Operator op);
std::string_view error_handling_name(ErrorHandling strategy);
std::string_view pipeline_mode_name(PipelineMode mode);  // "inline" | "stream"

}  // namespace wasmq::etl
