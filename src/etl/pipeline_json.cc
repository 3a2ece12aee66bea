// The canonical JSON form of a pipeline document (GET, persistence).
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "etl/pipeline.h"

namespace wasmq::etl {
namespace {

namespace json = boost::json;

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
      {"count_module_errors", pipeline.circuit_breaker.count_module_errors},
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

}  // namespace wasmq::etl
