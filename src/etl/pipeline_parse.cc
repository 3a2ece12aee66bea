// The pipeline document's parser: the document's own members in both forms (000/003 and the
// single-module form of seed 001), and parse_pipeline. The stages are read in
// pipeline_parse_stages.cc, single fields in pipeline_reader.cc.
#include <algorithm>
#include <array>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "etl/pipeline.h"
#include "etl/pipeline_reader.h"
#include "etl/semver.h"

namespace wasmq::etl {
namespace pipeline_detail {
namespace {

constexpr uint64_t kMaxRetries = 100;
constexpr double kMaxBackoffMultiplier = 100.0;
constexpr uint64_t kMaxBatchSize = 65536;
constexpr uint64_t kMaxFailureThreshold = 1'000'000;
constexpr uint64_t kMaxDeadLetterMessageSize = 256ull * 1024 * 1024;
constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxDescriptionLength = 4096;

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
const std::initializer_list<std::string_view> kRetryConfigMembers = {
    "max_retries", "initial_delay_ms", "max_delay_ms", "backoff_multiplier", "jitter"};
const std::initializer_list<std::string_view> kDeadLetterMembers = {
    "topic_prefix", "include_error_context", "max_message_size"};
const std::initializer_list<std::string_view> kCircuitBreakerMembers = {
    "failure_threshold", "open_ms", "count_module_errors"};
const std::initializer_list<std::string_view> kConfigurationMembers = {
    "timeout_ms", "batch_size", "processing_mode", "retry_policy"};
const std::initializer_list<std::string_view> kRetryPolicyMembers = {"max_retries", "backoff_ms"};
constexpr std::array<std::string_view, 2> kProcessingModes = {"single_message", "batch"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool DocumentReader::read_pipeline(const json::value& document, std::string_view generated_id,
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
    bool known =
        contains(kCommonPipelineMembers, member.key()) ||
        contains(single_module_form ? kSingleModuleFormMembers : kStagedFormMembers, member.key());
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

bool DocumentReader::read_common(const json::object& object, PipelineSpec* spec,
                                 bool* have_error_handling) {
  if (!read_string(object, "", "description", kMaxDescriptionLength, &spec->description) ||
      !read_bool(object, "", "enabled", &spec->enabled) ||
      !read_signed(object, "", "priority", &spec->priority) ||
      !read_integer(object, "", "global_timeout_ms", 1, kMaxTimeoutMs, &spec->global_timeout_ms) ||
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
         read_start_from(object, spec) && read_topic(object, "", "error_topic", &spec->error_topic);
}

bool DocumentReader::read_retry_config(const json::object& object, PipelineSpec* spec) {
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
      !read_integer(*retry, path, "initial_delay_ms", 0, kMaxTimeoutMs, &config.initial_delay_ms) ||
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

bool DocumentReader::read_dead_letter_config(const json::object& object, PipelineSpec* spec) {
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

bool DocumentReader::read_circuit_breaker(const json::object& object, PipelineSpec* spec) {
  const json::object* breaker = nullptr;
  if (!read_object(object, "", "circuit_breaker", false, &breaker)) return false;
  if (breaker == nullptr) return true;
  const std::string path = "circuit_breaker";
  return check_members(*breaker, path, kCircuitBreakerMembers) &&
         read_integer(*breaker, path, "failure_threshold", 1, kMaxFailureThreshold,
                      &spec->circuit_breaker.failure_threshold) &&
         read_integer(*breaker, path, "open_ms", 1, kMaxTimeoutMs, &spec->circuit_breaker.open_ms) &&
         read_bool(*breaker, path, "count_module_errors",
                   &spec->circuit_breaker.count_module_errors);
}

bool DocumentReader::read_allowed_output_topics(const json::object& object, PipelineSpec* spec) {
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

bool DocumentReader::configuration_has_retry_policy(const json::object& object) {
  const json::value* configuration = object.if_contains("configuration");
  return configuration != nullptr && configuration->is_object() &&
         configuration->get_object().contains("retry_policy");
}

bool DocumentReader::read_configuration(const json::object& object, PipelineSpec* spec) {
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

bool DocumentReader::read_start_from(const json::object& object, PipelineSpec* spec) {
  const json::value* value = object.if_contains("start_from");
  if (value == nullptr) return true;
  const std::string path = "start_from";
  auto expected = [&] {
    return fail(path, "expected \"earliest\", \"latest\", an offset or \"@<timestamp_ms>\", got " +
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

bool DocumentReader::read_single_module_form(const json::object& object, PipelineSpec* spec) {
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

bool DocumentReader::check_mode(const json::object& object, bool single_module_form,
                                PipelineSpec* spec) {
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

}  // namespace pipeline_detail

std::string pipeline_id_from_name(const boost::json::object& document) {
  if (document.contains("pipeline_id")) return {};
  const boost::json::value* name = document.if_contains("name");
  if (name == nullptr || !name->is_string()) name = document.if_contains("pipeline_name");
  if (name == nullptr || !name->is_string()) return {};
  std::string id;
  bool gap = false;
  for (char c : name->get_string()) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_';
    if (!keep) {
      gap = true;
      continue;
    }
    if (gap && !id.empty()) id += '-';
    gap = false;
    id += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (id.size() >= kMaxIdLength) break;
  }
  if (id.size() > kMaxIdLength) id.resize(kMaxIdLength);
  while (!id.empty() && id.front() == '.') id.erase(id.begin());
  return id;
}

Status parse_pipeline(const boost::json::value& document, std::string_view generated_id,
                      PipelineSpec* out) {
  pipeline_detail::DocumentReader reader;
  if (reader.read_pipeline(document, generated_id, out)) return Status::ok();
  return reader.take_error();
}

}  // namespace wasmq::etl
