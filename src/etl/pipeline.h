// The pipeline document (pipelines.md; the seeds' JSON of 000 §5.2 and 003 "Data Model"): the
// data model, its parsing from JSON with validation that names the bad field by its path, its
// JSON form (for the API and for persistence), and RFC 7386 merge-patch.
//
// TOML `[[etl.pipelines]]` tables reach this room already turned into JSON (cli/config.h), so
// there is one parser for both.
//
// Threads: plain values; any thread.
#pragma once

#include <boost/json/value.hpp>
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
  std::string field_path;     // header name, or a JSONPath of the subset for PayloadField
  Operator op = Operator::kEquals;
  boost::json::value value;   // a string, number or bool (null is refused by the parser)
  bool negate = false;
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
};

// One module of a stage.
struct ModuleSpec {
  // A full id "name-vX.Y.Z" (pinned) or a bare "name" (follows the newest version).
  std::string module_id;
  InstanceConfig instance_config;
  std::vector<TopicFilterSpec> topic_filters;        // none: every topic; several: any (OR)
  std::vector<ConditionalRuleSpec> conditional_rules;  // all must hold (AND)
};

struct StageSpec {
  uint32_t priority = 0;  // ascending; unique within a pipeline
  std::vector<ModuleSpec> modules;
  bool parallel_execution = false;
  std::optional<uint64_t> stage_timeout_ms;
  bool continue_on_error = false;
  std::optional<uint32_t> max_concurrent_modules;  // parallel stages only
  std::string execution_strategy;                  // accepted as the seeds show; informative
};

enum class ErrorHandling { kStopPipeline, kSkipModule, kRetryWithBackoff, kSendToDeadLetter };

struct RetryConfig {
  uint32_t max_retries = 3;
  uint64_t initial_delay_ms = 100;
  uint64_t max_delay_ms = 5000;
  double backoff_multiplier = 2.0;
  bool jitter = true;
};

struct DeadLetterConfig {
  std::string topic_prefix = "dlq.etl";
  bool include_error_context = true;
  uint64_t max_message_size = 1024 * 1024;
};

struct CircuitBreakerConfig {
  uint32_t failure_threshold = 5;
  uint64_t open_ms = 30000;
};

enum class PipelineMode { kInline, kStream };

// The seed 001 form's `configuration` object.
struct PipelineTuning {
  std::optional<uint64_t> timeout_ms;  // default execution timeout of this pipeline's modules
  std::optional<uint32_t> batch_size;  // most messages per module call for this pipeline
  std::string processing_mode;         // "single_message" | "batch"; informative
};

struct PipelineSpec {
  std::string pipeline_id;
  std::string name;
  std::optional<std::string> description;
  bool enabled = true;
  int64_t priority = 0;  // pipelines apply in ascending priority, ties by pipeline_id
  std::vector<StageSpec> stages;  // sorted by priority after parsing
  uint64_t global_timeout_ms = 30000;
  uint32_t max_retries = 3;
  ErrorHandling error_handling = ErrorHandling::kSkipModule;
  std::optional<RetryConfig> retry_config;            // max_retries falls back to the above
  std::optional<DeadLetterConfig> dead_letter_config; // set: SendToDeadLetter has a topic
  CircuitBreakerConfig circuit_breaker;
  std::vector<std::string> allowed_output_topics;     // glob patterns for `wasmq.topic`
  PipelineTuning configuration;

  PipelineMode mode = PipelineMode::kInline;
  std::string source_topic;       // stream mode
  std::string destination_topic;  // stream mode
  std::string start_from = "latest";  // stream: "earliest" | "latest" | "<offset>" | "@<ms>"
  std::string error_topic;        // seed 001 form; overrides [etl] error_topic_prefix

  // The retry count in force: retry_config.max_retries when given, else max_retries.
  uint32_t effective_max_retries() const {
    return retry_config ? retry_config->max_retries : max_retries;
  }
};

// A parse failure: `field` is the JSON path of the bad field ("stages[1].modules[0]
// .topic_filters[0].pattern"; empty for the document as a whole) and `message` says what is
// wrong, starting with the path ("stages[1]...pattern: invalid regex: missing )").
struct PipelineError {
  std::string field;
  std::string message;
};

// Reads and validates a pipeline document: the seeds' JSON (000 §5.2, 003) or the seed 001 form
// (`pipeline_name`, `source_topic`, `destination_topic`, `module_name`, `module_version`,
// `configuration`), which becomes a stream pipeline with one stage of one module.
// `generated_id` is used when the document has no pipeline_id.
// Checks: unknown fields, types and ranges, enum names, unique stage priorities, non-empty
// module ids, topic names, valid RE2 patterns (Regex filters, Matches rules), the JSONPath
// subset of PayloadField rules, glob patterns.
std::optional<PipelineError> parse_pipeline(const boost::json::value& document,
                                            std::string_view generated_id, PipelineSpec* out);

// The document form of a pipeline (every field, defaults included), as GET returns it and as
// it is persisted; parse_pipeline(pipeline_to_json(p)) gives p back.
boost::json::object pipeline_to_json(const PipelineSpec& pipeline);

// RFC 7386 JSON merge-patch of `patch` onto `target` (objects merge, null removes, anything
// else replaces).
void merge_patch(boost::json::value& target, const boost::json::value& patch);

// Enum names as the documents spell them.
std::string_view filter_type_name(FilterType type);
std::string_view condition_type_name(ConditionType type);
std::string_view operator_name(Operator op);
std::string_view error_handling_name(ErrorHandling strategy);

}  // namespace wasmq::etl
