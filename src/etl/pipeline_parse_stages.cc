// The pipeline parser's stages: each stage, its modules, their instance_config, topic filters
// and conditional rules.
#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "etl/json_path.h"
#include "etl/pipeline.h"
#include "etl/pipeline_reader.h"

namespace wasmq::etl::pipeline_detail {
namespace {

constexpr uint64_t kMinMemoryLimitBytes = 64 * 1024;
constexpr uint64_t kMaxMemoryLimitBytes = 4ull * 1024 * 1024 * 1024;
constexpr uint64_t kMaxConcurrency = 1024;
constexpr uint64_t kMaxCacheTtlSeconds = 30ull * 24 * 3600;
constexpr size_t kMaxPatternLength = 4096;
constexpr size_t kMaxFieldPathLength = 1024;
constexpr size_t kMaxExecutionStrategyLength = 64;

// The members each object may have.
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

}  // namespace

bool DocumentReader::read_stages(const json::object& object, PipelineSpec* spec) {
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
  std::stable_sort(spec->stages.begin(), spec->stages.end(),
                   [](const StageSpec& a, const StageSpec& b) { return a.priority < b.priority; });
  return true;
}

bool DocumentReader::read_stage(const json::value& value, const std::string& path,
                                StageSpec* stage) {
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

bool DocumentReader::read_module(const json::value& value, const std::string& path,
                                 ModuleSpec* module) {
  const json::object* object = value.if_object();
  if (object == nullptr) return fail(path, "expected an object, got " + describe(value));
  const json::value* id = nullptr;
  const std::string id_path = path + ".module_id";
  if (!check_members(*object, path, kModuleMembers) || !required(*object, path, "module_id", &id) ||
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

bool DocumentReader::read_instance_config(const json::object& module,
                                          const std::string& module_path, InstanceConfig* config) {
  const json::object* object = nullptr;
  if (!read_object(module, module_path, "instance_config", false, &object)) return false;
  if (object == nullptr) return true;
  const std::string path = module_path + ".instance_config";
  if (!check_members(*object, path, kInstanceConfigMembers) ||
      !read_integer(*object, path, "memory_limit_bytes", kMinMemoryLimitBytes, kMaxMemoryLimitBytes,
                    &config->memory_limit_bytes) ||
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

bool DocumentReader::read_filter(const json::value& value, const std::string& path,
                                 TopicFilterSpec* filter) {
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

bool DocumentReader::read_rule(const json::value& value, const std::string& path,
                               ConditionalRuleSpec* rule) {
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
      return fail(field_path_path, "expected a string (ignored for " +
                                       std::string(name_in(kConditionTypes, rule->condition_type)) +
                                       "), got " + describe(*field_path));
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

}  // namespace wasmq::etl::pipeline_detail
