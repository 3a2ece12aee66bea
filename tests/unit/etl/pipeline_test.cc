// The pipeline document: the seeds' documents parse to the values they spell, invalid documents
// are refused with the JSON path of the bad field, pipeline_to_json round-trips, and merge_patch
// follows RFC 7386.
#include "common/json_merge_patch.h"
#include "etl/json_path.h"
#include "etl/pipeline.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path kPipelinesDir = fs::path(WASMQ_TEST_DATA_DIR) / "pipelines";

constexpr const char* kSeedFiles[] = {
    "seed-000-iot-sensor-processing.json",
    "seed-003-message-enrichment.json",
    "seed-003-iot-sensor-processing.json",
    "seed-001-message-transformation.json",
};

json::value load(const std::string& name) {
  std::ifstream in(kPipelinesDir / name, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << (kPipelinesDir / name);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

PipelineSpec parse_ok(const json::value& document, std::string_view generated_id = "gen-1") {
  PipelineSpec spec;
  Status error = parse_pipeline(document, generated_id, &spec);
  EXPECT_TRUE(error.is_ok()) << error.message();
  return spec;
}

Status parse_error(const json::value& document) {
  PipelineSpec spec;
  Status error = parse_pipeline(document, "gen-1", &spec);
  EXPECT_FALSE(error.is_ok()) << "accepted: " << json::serialize(document);
  EXPECT_EQ(error.code(), error.is_ok() ? StatusCode::kOk : StatusCode::kInvalidArgument);
  return error;
}

// The error for a document given as text.
Status parse_text_error(std::string_view text) { return parse_error(json::parse(text)); }

// The JSON object at `pointer` (RFC 6901) in `document`, to change one field of a seed.
json::object& at(json::value& document, std::string_view pointer) {
  return document.at_pointer(pointer).as_object();
}

// A small valid inline pipeline: one stage of one module.
json::value minimal_pipeline() {
  return json::parse(R"({"pipeline_id": "p1", "stages": [
      {"priority": 0, "modules": [{"module_id": "m"}]}]})");
}

// minimal_pipeline() with one conditional rule.
json::value pipeline_with_rule(std::string_view rule) {
  json::value document = minimal_pipeline();
  at(document, "/stages/0/modules/0")["conditional_rules"] = json::array{json::parse(rule)};
  return document;
}

// minimal_pipeline() with one topic filter.
json::value pipeline_with_filter(std::string_view filter) {
  json::value document = minimal_pipeline();
  at(document, "/stages/0/modules/0")["topic_filters"] = json::array{json::parse(filter)};
  return document;
}

// --- The seeds' documents ------------------------------------------------------------------

TEST(PipelineSeeds, Seed000IotSensorProcessingParsesToItsValues) {
  PipelineSpec p = parse_ok(load("seed-000-iot-sensor-processing.json"));
  EXPECT_EQ(p.pipeline_id, "iot-sensor-processing");
  EXPECT_EQ(p.name, "IoT Sensor Data Processing Pipeline");
  EXPECT_EQ(p.description,
            "Multi-stage processing for IoT sensor data with validation, "
            "enrichment, and formatting");
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.global_timeout_ms, 15000u);
  EXPECT_EQ(p.max_retries, 3u);
  EXPECT_EQ(p.error_handling, ErrorHandling::kSkipModule);
  EXPECT_EQ(p.mode, PipelineMode::kInline);
  EXPECT_FALSE(p.retry_config.has_value());
  EXPECT_FALSE(p.dead_letter_config.has_value());
  ASSERT_EQ(p.stages.size(), 3u);

  const StageSpec& s0 = p.stages[0];
  EXPECT_EQ(s0.priority, 0u);
  EXPECT_FALSE(s0.parallel_execution);
  EXPECT_TRUE(s0.continue_on_error);
  EXPECT_EQ(s0.stage_timeout_ms, 2000u);
  ASSERT_EQ(s0.modules.size(), 1u);
  const ModuleSpec& validator = s0.modules[0];
  EXPECT_EQ(validator.module_id, "sensor-data-validator");
  ASSERT_EQ(validator.topic_filters.size(), 2u);
  EXPECT_EQ(validator.topic_filters[0].filter_type, FilterType::kPrefix);
  EXPECT_EQ(validator.topic_filters[0].pattern, "iot.sensors.");
  EXPECT_TRUE(validator.topic_filters[0].case_sensitive);
  EXPECT_FALSE(validator.topic_filters[0].negate);
  EXPECT_EQ(validator.topic_filters[1].filter_type, FilterType::kRegex);
  EXPECT_EQ(validator.topic_filters[1].pattern, "^sensor-\\d+\\.");
  ASSERT_EQ(validator.conditional_rules.size(), 2u);
  EXPECT_EQ(validator.conditional_rules[0].condition_type, ConditionType::kHeaderValue);
  EXPECT_EQ(validator.conditional_rules[0].field_path, "content-type");
  EXPECT_EQ(validator.conditional_rules[0].op, Operator::kEquals);
  EXPECT_EQ(validator.conditional_rules[0].value, json::value("application/json"));
  EXPECT_EQ(validator.conditional_rules[1].condition_type, ConditionType::kPayloadField);
  EXPECT_EQ(validator.conditional_rules[1].field_path, "$.sensor_id");
  EXPECT_EQ(validator.conditional_rules[1].op, Operator::kContains);
  EXPECT_EQ(validator.conditional_rules[1].value, json::value("sensor"));
  const InstanceConfig& vc = validator.instance_config;
  EXPECT_EQ(vc.memory_limit_bytes, 33554432u);
  EXPECT_EQ(vc.execution_timeout_ms, 1000u);
  EXPECT_EQ(vc.max_concurrent_instances, 10u);
  EXPECT_TRUE(vc.enable_caching);
  EXPECT_EQ(vc.cache_ttl_seconds, 300u);
  EXPECT_EQ(vc.custom_config,
            json::parse(R"({"strict_validation": true, "schema_version": "v2.1"})"));

  const StageSpec& s1 = p.stages[1];
  EXPECT_EQ(s1.priority, 1u);
  EXPECT_TRUE(s1.parallel_execution);
  EXPECT_EQ(s1.stage_timeout_ms, 5000u);
  ASSERT_EQ(s1.modules.size(), 3u);
  EXPECT_EQ(s1.modules[0].module_id, "temperature-converter");
  EXPECT_EQ(s1.modules[0].topic_filters[0].filter_type, FilterType::kContains);
  EXPECT_FALSE(s1.modules[0].topic_filters[0].case_sensitive);
  EXPECT_EQ(s1.modules[0].conditional_rules[1].field_path, "$.unit");
  EXPECT_EQ(s1.modules[0].conditional_rules[1].value, json::value("celsius"));
  EXPECT_FALSE(s1.modules[0].instance_config.enable_caching);
  EXPECT_EQ(s1.modules[0].instance_config.cache_ttl_seconds, 300u);  // the default
  EXPECT_TRUE(s1.modules[0].instance_config.custom_config.is_null());
  EXPECT_EQ(s1.modules[1].module_id, "geolocation-enricher");
  EXPECT_EQ(s1.modules[1].topic_filters[0].filter_type, FilterType::kWildcard);
  EXPECT_EQ(s1.modules[1].topic_filters[0].pattern, "iot.sensors.*");
  EXPECT_EQ(s1.modules[1].instance_config.memory_limit_bytes, 25165824u);
  EXPECT_EQ(s1.modules[1].instance_config.cache_ttl_seconds, 600u);
  const ModuleSpec& anomaly = s1.modules[2];
  EXPECT_EQ(anomaly.module_id, "anomaly-detector");
  EXPECT_EQ(anomaly.topic_filters[0].filter_type, FilterType::kSuffix);
  EXPECT_EQ(anomaly.topic_filters[0].pattern, ".critical");
  EXPECT_EQ(anomaly.conditional_rules[0].op, Operator::kGreaterThan);
  EXPECT_EQ(anomaly.conditional_rules[0].value, json::value(100));
  EXPECT_EQ(anomaly.instance_config.max_concurrent_instances, 5u);

  const StageSpec& s2 = p.stages[2];
  EXPECT_EQ(s2.priority, 2u);
  EXPECT_FALSE(s2.continue_on_error);
  ASSERT_EQ(s2.modules.size(), 1u);
  EXPECT_EQ(s2.modules[0].module_id, "data-formatter");
  EXPECT_EQ(s2.modules[0].topic_filters[0].filter_type, FilterType::kExact);
  EXPECT_EQ(s2.modules[0].topic_filters[0].pattern, "*");
  EXPECT_TRUE(s2.modules[0].conditional_rules.empty());
  EXPECT_EQ(s2.modules[0].instance_config.execution_timeout_ms, 300u);
  EXPECT_EQ(s2.modules[0].instance_config.cache_ttl_seconds, 60u);
}

TEST(PipelineSeeds, Seed003MessageEnrichmentParsesToItsValues) {
  PipelineSpec p = parse_ok(load("seed-003-message-enrichment.json"));
  EXPECT_EQ(p.pipeline_id, "message-enrichment-pipeline");
  EXPECT_EQ(p.name, "Multi-Stage Message Enhancement");
  EXPECT_EQ(p.global_timeout_ms, 5000u);
  EXPECT_EQ(p.error_handling, ErrorHandling::kSkipModule);
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_FALSE(p.stages[0].stage_timeout_ms.has_value());
  const ModuleSpec& validator = p.stages[0].modules[0];
  EXPECT_EQ(validator.module_id, "message-validator");
  EXPECT_EQ(validator.topic_filters[0].filter_type, FilterType::kWildcard);
  EXPECT_EQ(validator.topic_filters[0].pattern, "events.*");
  EXPECT_FALSE(validator.topic_filters[0].case_sensitive);
  EXPECT_EQ(validator.instance_config.memory_limit_bytes, 67108864u);
  EXPECT_EQ(validator.instance_config.custom_config,
            json::parse(R"({"schema_validation": true, "strict_mode": false})"));
  ASSERT_EQ(p.stages[1].modules.size(), 2u);
  const ModuleSpec& geo = p.stages[1].modules[0];
  EXPECT_EQ(geo.topic_filters[0].filter_type, FilterType::kRegex);
  EXPECT_EQ(geo.topic_filters[0].pattern, "^(events|logs)\\.(mobile|web)\\.");
  EXPECT_EQ(geo.conditional_rules[0].field_path, "client_ip");
  EXPECT_EQ(geo.conditional_rules[0].op, Operator::kContains);
  EXPECT_EQ(geo.conditional_rules[0].value, json::value("."));
  EXPECT_EQ(p.stages[1].modules[1].module_id, "content-analyzer");
  EXPECT_TRUE(p.stages[1].modules[1].conditional_rules.empty());
  EXPECT_EQ(p.stages[2].modules[0].module_id, "message-formatter");
  EXPECT_EQ(p.stages[2].modules[0].instance_config.execution_timeout_ms, 200u);
  EXPECT_EQ(p.stages[2].modules[0].instance_config.max_concurrent_instances, 25u);
}

TEST(PipelineSeeds, Seed003IotSensorProcessingParsesWithDefaultsForOmittedFields) {
  PipelineSpec p = parse_ok(load("seed-003-iot-sensor-processing.json"));
  EXPECT_EQ(p.pipeline_id, "iot-sensor-processing");
  EXPECT_EQ(p.global_timeout_ms, 3000u);
  EXPECT_EQ(p.max_retries, 2u);
  EXPECT_EQ(p.effective_max_retries(), 2u);
  EXPECT_EQ(p.error_handling, ErrorHandling::kRetryWithBackoff);
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_FALSE(p.stages[0].continue_on_error);  // omitted: the default
  const InstanceConfig& config = p.stages[0].modules[0].instance_config;
  EXPECT_FALSE(config.memory_limit_bytes.has_value());
  EXPECT_FALSE(config.execution_timeout_ms.has_value());
  EXPECT_FALSE(config.max_concurrent_instances.has_value());
  EXPECT_FALSE(config.enable_caching);
  ASSERT_EQ(p.stages[1].modules.size(), 2u);
  const ModuleSpec& pressure = p.stages[1].modules[1];
  EXPECT_EQ(pressure.module_id, "pressure-normalizer");
  EXPECT_EQ(pressure.topic_filters[0].filter_type, FilterType::kExact);
  EXPECT_EQ(pressure.topic_filters[0].pattern, "iot.sensors.pressure");
  EXPECT_EQ(pressure.conditional_rules[0].field_path, "$.reading");
  EXPECT_EQ(pressure.conditional_rules[0].op, Operator::kGreaterThan);
  EXPECT_EQ(pressure.conditional_rules[0].value, json::value(0));
}

TEST(PipelineSeeds, Seed001BecomesAStreamPipelineOfOneModule) {
  PipelineSpec p = parse_ok(load("seed-001-message-transformation.json"), "pipeline-123");
  EXPECT_EQ(p.pipeline_id, "pipeline-123");
  EXPECT_EQ(p.name, "message-transformation");
  EXPECT_EQ(p.description, "Transform and enrich incoming messages");
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.mode, PipelineMode::kStream);
  EXPECT_EQ(p.source_topic, "raw-events");
  EXPECT_EQ(p.destination_topic, "processed-events");
  EXPECT_EQ(p.error_topic, "etl-errors");
  EXPECT_EQ(p.start_from, "latest");
  ASSERT_EQ(p.stages.size(), 1u);
  EXPECT_EQ(p.stages[0].priority, 0u);
  ASSERT_EQ(p.stages[0].modules.size(), 1u);
  EXPECT_EQ(p.stages[0].modules[0].module_id, "message-processor-v1.0.0");
  EXPECT_TRUE(p.stages[0].modules[0].topic_filters.empty());
  EXPECT_EQ(p.configuration.batch_size, 1u);
  EXPECT_EQ(p.configuration.processing_mode, "single_message");
  EXPECT_EQ(p.configuration.timeout_ms, 1000u);
  ASSERT_TRUE(p.retry_config.has_value());
  EXPECT_EQ(p.retry_config->max_retries, 3u);
  EXPECT_EQ(p.retry_config->initial_delay_ms, 100u);
  EXPECT_EQ(p.retry_config->max_delay_ms, 5000u);
  // A retry policy without an explicit error_handling asks for retries.
  EXPECT_EQ(p.error_handling, ErrorHandling::kRetryWithBackoff);
}

TEST(PipelineSeeds, Seed001FormKeepsAGivenPipelineIdAndABareModuleName) {
  json::value document = load("seed-001-message-transformation.json");
  document.as_object()["pipeline_id"] = "transform";
  document.as_object().erase("module_version");
  PipelineSpec p = parse_ok(document);
  EXPECT_EQ(p.pipeline_id, "transform");
  EXPECT_EQ(p.stages[0].modules[0].module_id, "message-processor");
}

TEST(PipelineSeeds, EverySeedDocumentRoundTripsThroughPipelineToJson) {
  for (const char* file : kSeedFiles) {
    SCOPED_TRACE(file);
    PipelineSpec first = parse_ok(load(file));
    json::object canonical = pipeline_to_json(first);
    PipelineSpec second = parse_ok(canonical, "another-generated-id");
    EXPECT_EQ(second, first);
    EXPECT_EQ(pipeline_to_json(second), canonical);
    // As persisted: through text.
    PipelineSpec third = parse_ok(json::parse(json::serialize(canonical)));
    EXPECT_EQ(third, first);
  }
}

// --- Fields beyond the seeds' examples -------------------------------------------------------

TEST(PipelineFields, Section7StageAndErrorSettingsAreRead) {
  json::value document = json::parse(R"({
    "pipeline_id": "p1",
    "error_handling": "RetryWithBackoff",
    "retry_config": {"max_retries": 4, "initial_delay_ms": 100, "max_delay_ms": 5000,
                     "backoff_multiplier": 1.5, "jitter": false},
    "dead_letter_config": {"topic_prefix": "dlq.etl", "include_error_context": true,
                           "max_message_size": 1048576},
    "stages": [{"priority": 1, "parallel_execution": true, "max_concurrent_modules": 5,
                "execution_strategy": "WorkStealing", "modules": [{"module_id": "a"}]}]})");
  PipelineSpec p = parse_ok(document);
  EXPECT_EQ(p.error_handling, ErrorHandling::kRetryWithBackoff);
  ASSERT_TRUE(p.retry_config.has_value());
  EXPECT_EQ(p.retry_config->max_retries, 4u);
  EXPECT_EQ(p.retry_config->backoff_multiplier, 1.5);
  EXPECT_FALSE(p.retry_config->jitter);
  EXPECT_EQ(p.effective_max_retries(), 4u);
  ASSERT_TRUE(p.dead_letter_config.has_value());
  EXPECT_EQ(p.dead_letter_config->topic_prefix, "dlq.etl");
  EXPECT_EQ(p.dead_letter_config->max_message_size, 1048576u);
  EXPECT_EQ(p.stages[0].max_concurrent_modules, 5u);
  EXPECT_EQ(p.stages[0].execution_strategy, "WorkStealing");
  EXPECT_EQ(p.name, "p1");  // defaults to the id
}

TEST(PipelineFields, EveryOptionalFieldRoundTrips) {
  json::value document = json::parse(R"({
    "pipeline_id": "full", "name": "Full", "description": "all fields", "enabled": false,
    "priority": -7, "mode": "stream", "source_topic": "in", "destination_topic": "out",
    "start_from": "@1700000000000", "error_topic": "errs", "global_timeout_ms": 60000,
    "max_retries": 0, "error_handling": "SendToDeadLetter",
    "retry_config": {"max_retries": 9, "initial_delay_ms": 0, "max_delay_ms": 10,
                     "backoff_multiplier": 1.25, "jitter": true},
    "dead_letter_config": {"topic_prefix": "dead", "include_error_context": false,
                           "max_message_size": 4096},
    "circuit_breaker": {"failure_threshold": 2, "open_ms": 1000},
    "allowed_output_topics": ["audit.*", "x?y"],
    "configuration": {"timeout_ms": 500, "batch_size": 10, "processing_mode": "batch"},
    "stages": [
      {"priority": 4294967295, "modules": [{"module_id": "last-v2.0.0-rc.1"}]},
      {"priority": 3, "parallel_execution": true, "continue_on_error": true,
       "stage_timeout_ms": 86400000, "max_concurrent_modules": 2, "execution_strategy": "Fair",
       "modules": [{"module_id": "m.1_x",
         "instance_config": {"memory_limit_bytes": 65536, "execution_timeout_ms": 1,
                             "max_concurrent_instances": 1024, "enable_caching": true,
                             "cache_ttl_seconds": 2592000, "custom_config": [1, "two"]},
         "topic_filters": [{"filter_type": "Regex", "pattern": "^a$", "case_sensitive": false,
                            "negate": true}],
         "conditional_rules": [
           {"condition_type": "MessageSize", "operator": "LessThan", "value": 2048.5},
           {"condition_type": "MessageAge", "field_path": "", "operator": "GreaterThan",
            "value": 60000, "negate": true},
           {"condition_type": "HeaderValue", "field_path": "x-flag", "operator": "Equals",
            "value": true},
           {"condition_type": "PayloadField", "field_path": "$['a b'][0].c",
            "operator": "Matches", "value": "^x+$"}]}]}]})");
  PipelineSpec p = parse_ok(document);
  EXPECT_EQ(p.priority, -7);
  EXPECT_EQ(p.stages[0].priority, 3u);  // sorted
  EXPECT_EQ(p.stages[1].priority, 4294967295u);
  EXPECT_EQ(p.stages[1].modules[0].module_id, "last-v2.0.0-rc.1");
  EXPECT_EQ(p.circuit_breaker.failure_threshold, 2u);
  EXPECT_EQ(p.allowed_output_topics, (std::vector<std::string>{"audit.*", "x?y"}));
  EXPECT_EQ(p.stages[0].modules[0].conditional_rules[0].value, json::value(2048.5));
  EXPECT_EQ(p.start_from, "@1700000000000");

  json::object canonical = pipeline_to_json(p);
  EXPECT_EQ(parse_ok(canonical), p);
  EXPECT_EQ(parse_ok(json::parse(json::serialize(canonical))), p);
  EXPECT_EQ(canonical.at("retry_config").at("backoff_multiplier"), json::value(1.25));
}

TEST(PipelineFields, CanonicalFormHasDefaultsAndLeavesStreamFieldsToStreams) {
  json::object out = pipeline_to_json(parse_ok(minimal_pipeline()));
  EXPECT_EQ(out.at("name"), "p1");
  EXPECT_EQ(out.at("enabled"), true);
  EXPECT_EQ(out.at("mode"), "inline");
  EXPECT_EQ(out.at("global_timeout_ms"), 30000);
  EXPECT_EQ(out.at("max_retries"), 3);
  EXPECT_EQ(out.at("error_handling"), "SkipModule");
  EXPECT_EQ(out.at("circuit_breaker"),
            json::parse(R"({"failure_threshold": 5, "open_ms": 30000, "count_module_errors": false})"));
  EXPECT_EQ(out.at("stages").at(0).at("modules").at(0).at("instance_config"),
            json::parse(R"({"enable_caching": false, "cache_ttl_seconds": 300})"));
  EXPECT_FALSE(out.contains("source_topic"));
  EXPECT_FALSE(out.contains("start_from"));
  EXPECT_FALSE(out.contains("description"));
  EXPECT_FALSE(out.contains("retry_config"));
}

TEST(PipelineFields, StagesAreSortedByPriority) {
  PipelineSpec p = parse_ok(json::parse(R"({"pipeline_id": "p", "stages": [
      {"priority": 20, "modules": [{"module_id": "c"}]},
      {"priority": 0, "modules": [{"module_id": "a"}]},
      {"priority": 7, "modules": [{"module_id": "b"}]}]})"));
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_EQ(p.stages[0].modules[0].module_id, "a");
  EXPECT_EQ(p.stages[1].modules[0].module_id, "b");
  EXPECT_EQ(p.stages[2].modules[0].module_id, "c");
}

TEST(PipelineFields, GeneratedIdIsUsedWhenTheDocumentHasNone) {
  json::value document = minimal_pipeline();
  document.as_object().erase("pipeline_id");
  PipelineSpec p = parse_ok(document, "generated-42");
  EXPECT_EQ(p.pipeline_id, "generated-42");
  EXPECT_EQ(p.name, "generated-42");

  PipelineSpec spec;
  auto error = parse_pipeline(document, "", &spec);
  ASSERT_FALSE(error.is_ok());
  EXPECT_EQ(error.field(), "pipeline_id");
  EXPECT_EQ(error.message(), "pipeline_id: required");
}

TEST(PipelineFields, StartFromTakesAnIntegerOffset) {
  json::value document = load("seed-001-message-transformation.json");
  document.as_object()["start_from"] = 42;
  EXPECT_EQ(parse_ok(document).start_from, "42");
  document.as_object()["start_from"] = "earliest";
  EXPECT_EQ(parse_ok(document).start_from, "earliest");
  document.as_object()["start_from"] = "soon";
  EXPECT_EQ(parse_error(document).field(), "start_from");
}

TEST(PipelineFields, JsonPathSubsetIsAccepted) {
  for (const char* path : {"$", "$.a", "$.a.b_c-d", "$.a[0]", "$['a b']", "$[\"x\"][12].y"}) {
    SCOPED_TRACE(path);
    json::object rule{{"condition_type", "PayloadField"},
                      {"field_path", path},
                      {"operator", "Equals"},
                      {"value", 1}};
    parse_ok(pipeline_with_rule(json::serialize(rule)));
  }
}

TEST(PipelineFields, ModuleNamesAllowTheIdCharacters) {
  json::value document = minimal_pipeline();
  at(document, "/stages/0/modules/0")["module_id"] = std::string(128, 'n') + "-v1.2.3";
  EXPECT_EQ(parse_ok(document).stages[0].modules[0].module_id, std::string(128, 'n') + "-v1.2.3");
  at(document, "/stages/0/modules/0")["module_id"] = std::string(129, 'n');
  EXPECT_EQ(parse_error(document).field(), "stages[0].modules[0].module_id");
}

// --- Invalid documents: refused with the JSON path of the bad field ---------------------------

// L3: ids "." and ".." were stored as "..json" and "...json".
TEST(PipelineErrors, PipelineIdsStartingWithADotAreRefused) {
  for (std::string id : {".", "..", ".hidden"}) {
    json::value document = minimal_pipeline();
    document.as_object()["pipeline_id"] = id;
    Status error = parse_error(document);
    EXPECT_EQ(error.field(), "pipeline_id");
    EXPECT_EQ(error.message(),
              "pipeline_id: expected an id not starting with '.', got \"" + id + "\"");
  }
  json::value document = minimal_pipeline();
  document.as_object()["pipeline_id"] = "p.1.";
  EXPECT_EQ(parse_ok(document).pipeline_id, "p.1.");
}

// L4: dead letters of topic T go to "<prefix>.T", at most 249 characters.
TEST(PipelineErrors, ADeadLetterPrefixThatLeavesNoRoomForATopicIsRefused) {
  json::value document = minimal_pipeline();
  document.as_object()["dead_letter_config"] =
      json::object{{"topic_prefix", std::string(248, 'd')}};
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "dead_letter_config.topic_prefix");
  EXPECT_EQ(error.message(),
            "dead_letter_config.topic_prefix: a prefix of 248 characters leaves no room for "
            "\".<topic>\" in a topic name of at most 249 characters");
  document.as_object()["dead_letter_config"] =
      json::object{{"topic_prefix", std::string(247, 'd')}};
  parse_ok(document);
}

TEST(PipelineErrors, AStreamPipelineWhoseDeadLetterTopicWouldBeTooLongIsRefused) {
  json::value document = json::parse(R"({"pipeline_id": "s", "mode": "stream",
      "destination_topic": "out", "dead_letter_config": {"topic_prefix": "LLLL"},
      "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})");
  document.as_object()["source_topic"] = std::string(245, 'L');
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "dead_letter_config.topic_prefix");
  EXPECT_EQ(error.message(), "dead_letter_config.topic_prefix: the dead-letter topic \"LLLL." +
                               std::string(245, 'L') + "\" would be 250 characters, more than 249");
  document.as_object()["source_topic"] = std::string(244, 'L');
  parse_ok(document);
}

TEST(PipelineErrors, UnknownFieldIsNamedByItsPath) {
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/0/modules/0")["foo"] = 1;
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "stages[0].modules[0].foo");
  EXPECT_EQ(error.message(), "stages[0].modules[0].foo: unknown field");

  error = parse_text_error(R"({"pipeline_id": "p", "stages": [], "colour": "red"})");
  EXPECT_EQ(error.message(), "colour: unknown field");

  error = parse_text_error(R"({"pipeline_id": "p", "stages": [], "a b": 1})");
  EXPECT_EQ(error.message(), "[\"a b\"]: unknown field");
}

TEST(PipelineErrors, WrongTypeShowsTheValue) {
  json::value document = minimal_pipeline();
  document.as_object()["global_timeout_ms"] = "abc";
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "global_timeout_ms");
  EXPECT_EQ(error.message(),
            "global_timeout_ms: expected an integer from 1 to 86400000, got \"abc\"");

  document.as_object()["global_timeout_ms"] = 1.5;
  EXPECT_EQ(parse_error(document).message(),
            "global_timeout_ms: expected an integer from 1 to 86400000, got 1.5");

  document = minimal_pipeline();
  document.as_object()["enabled"] = "yes";
  EXPECT_EQ(parse_error(document).message(), "enabled: expected true or false, got \"yes\"");

  document = minimal_pipeline();
  at(document, "/stages/0")["priority"] = -1;
  EXPECT_EQ(parse_error(document).message(),
            "stages[0].priority: expected an integer from 0 to 4294967295, got -1");
}

TEST(PipelineErrors, BadEnumNameListsTheValidNames) {
  Status error =
      parse_error(pipeline_with_filter(R"({"filter_type": "Glob", "pattern": "a"})"));
  EXPECT_EQ(error.field(), "stages[0].modules[0].topic_filters[0].filter_type");
  EXPECT_EQ(error.message(),
            "stages[0].modules[0].topic_filters[0].filter_type: expected one of Exact, Wildcard, "
            "Regex, Prefix, Suffix, Contains, got \"Glob\"");

  // Names are exact: the seeds' spelling only.
  error = parse_error(pipeline_with_filter(R"({"filter_type": "exact", "pattern": "a"})"));
  EXPECT_EQ(error.field(), "stages[0].modules[0].topic_filters[0].filter_type");

  json::value document = minimal_pipeline();
  document.as_object()["error_handling"] = "Skip";
  EXPECT_EQ(parse_error(document).message(),
            "error_handling: expected one of StopPipeline, SkipModule, RetryWithBackoff, "
            "SendToDeadLetter, got \"Skip\"");

  error = parse_error(
      pipeline_with_rule(R"({"condition_type": "HeaderSize", "operator": "Equals", "value": 1})"));
  EXPECT_EQ(error.message(),
            "stages[0].modules[0].conditional_rules[0].condition_type: expected one of "
            "HeaderValue, PayloadField, MessageSize, MessageAge, got \"HeaderSize\"");

  error = parse_error(pipeline_with_rule(
      R"({"condition_type": "HeaderValue", "field_path": "h", "operator": "Equal", "value": 1})"));
  EXPECT_EQ(error.message(),
            "stages[0].modules[0].conditional_rules[0].operator: expected one of Equals, "
            "NotEquals, GreaterThan, LessThan, GreaterThanOrEqual, LessThanOrEqual, Contains, "
            "StartsWith, EndsWith, Matches, got \"Equal\"");
}

TEST(PipelineErrors, DuplicateStagePriorityNamesTheLaterStage) {
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/2")["priority"] = 0;
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "stages[2].priority");
  EXPECT_EQ(error.message(), "stages[2].priority: 0 duplicates stages[0]");
}

TEST(PipelineErrors, EmptyOrMissingStagesAreRefused) {
  Status error = parse_text_error(R"({"pipeline_id": "p", "stages": []})");
  EXPECT_EQ(error.field(), "stages");
  EXPECT_EQ(error.message(), "stages: expected at least one stage");
  EXPECT_EQ(parse_text_error(R"({"pipeline_id": "p"})").message(), "stages: required");
  EXPECT_EQ(parse_text_error(R"({"pipeline_id": "p", "stages": [{"priority": 0, "modules": []}]})")
                .message(),
            "stages[0].modules: expected at least one module");
  EXPECT_EQ(
      parse_text_error(R"({"pipeline_id": "p", "stages": [{"modules": [{"module_id": "m"}]}]})")
          .message(),
      "stages[0].priority: required");
}

TEST(PipelineErrors, EmptyOrMalformedModuleIdIsRefused) {
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/1/modules/2")["module_id"] = "";
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "stages[1].modules[2].module_id");
  EXPECT_EQ(error.message(), "stages[1].modules[2].module_id: expected a non-empty string, got \"\"");

  at(document, "/stages/1/modules/2")["module_id"] = "../etc/passwd";
  EXPECT_EQ(parse_error(document).field(), "stages[1].modules[2].module_id");

  at(document, "/stages/1/modules/2").erase("module_id");
  EXPECT_EQ(parse_error(document).message(), "stages[1].modules[2].module_id: required");
}

TEST(PipelineErrors, InvalidRegexInAFilterNamesThePattern) {
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/1/modules/0/topic_filters/0")["filter_type"] = "Regex";
  at(document, "/stages/1/modules/0/topic_filters/0")["pattern"] = "(temperature";
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "stages[1].modules[0].topic_filters[0].pattern");
  EXPECT_EQ(error.message().rfind("stages[1].modules[0].topic_filters[0].pattern: invalid regex: "
                                "missing )",
                                0),
            0u)
      << error.message();
}

TEST(PipelineErrors, InvalidRegexInAMatchesRuleNamesTheValue) {
  Status error = parse_error(pipeline_with_rule(
      R"({"condition_type": "HeaderValue", "field_path": "h", "operator": "Matches", "value": "[a-"})"));
  EXPECT_EQ(error.field(), "stages[0].modules[0].conditional_rules[0].value");
  EXPECT_EQ(
      error.message().rfind("stages[0].modules[0].conditional_rules[0].value: invalid regex: ", 0),
      0u)
      << error.message();

  error = parse_error(pipeline_with_rule(
      R"({"condition_type": "HeaderValue", "field_path": "h", "operator": "Matches", "value": 3})"));
  EXPECT_EQ(error.field(), "stages[0].modules[0].conditional_rules[0].value");
}

TEST(PipelineErrors, FieldPathOutsideTheJsonPathSubsetIsRefused) {
  for (const char* path : {"sensor_id", "$.", "$..a", "$.a[", "$[abc]", "$['a]", "$.a b", "$[1"}) {
    SCOPED_TRACE(path);
    json::value document = load("seed-000-iot-sensor-processing.json");
    at(document, "/stages/0/modules/0/conditional_rules/1")["field_path"] = path;
    Status error = parse_error(document);
    EXPECT_EQ(error.field(), "stages[0].modules[0].conditional_rules[1].field_path");
  }
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/0/modules/0/conditional_rules/1")["field_path"] = "sensor_id";
  EXPECT_EQ(parse_error(document).message(),
            "stages[0].modules[0].conditional_rules[1].field_path: invalid JSONPath \"sensor_id\" "
            "at offset 0: must start with '$'");
}

// The parser checks a field_path with the rule compiler's own JSONPath reader: what one accepts,
// the other does (an escaped quote in a quoted name, a name with characters beyond [A-Za-z0-9_]).
TEST(PipelineErrors, AFieldPathIsCheckedByTheRulesOwnJsonPathGrammar) {
  for (const char* path : {R"($['a\'b'])", R"($["say \"hi\""])", "$.a+b", "$.caf\u00e9[0]"}) {
    SCOPED_TRACE(path);
    json::value document = load("seed-000-iot-sensor-processing.json");
    at(document, "/stages/0/modules/0/conditional_rules/1")["field_path"] = path;
    PipelineSpec spec = parse_ok(document);
    EXPECT_TRUE(parse_json_path(spec.stages[0].modules[0].conditional_rules[1].field_path).is_ok());
  }
}

// A pinned module id's version is read by the registry's semver parser: a version the registry
// would refuse (leading zero, empty pre-release identifier) is no version.
TEST(PipelineErrors, AModuleVersionIsReadByTheOneSemverParser) {
  json::value document = json::parse(R"({"pipeline_name": "p", "source_topic": "in",
      "destination_topic": "out", "module_name": "m", "module_version": "01.2.3"})");
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "module_version");
  EXPECT_NE(error.message().find("leading zero"), std::string::npos) << error.message();
  document.as_object()["module_version"] = "1.2.3-rc..1";
  EXPECT_NE(parse_error(document).message().find("empty identifier"), std::string::npos);
  document.as_object()["module_version"] = "1.2.3-rc.1";
  EXPECT_EQ(parse_ok(document).stages[0].modules[0].module_id, "m-v1.2.3-rc.1");
  // "m-v01.2.3" carries no version, so it is a module name of its own, not "m" pinned.
  document.as_object().erase("module_version");
  document.as_object()["module_name"] = "m-v01.2.3";
  EXPECT_EQ(parse_ok(document).stages[0].modules[0].module_id, "m-v01.2.3");
}

TEST(PipelineErrors, RuleValueMustBeAStringNumberOrBoolean) {
  json::value document = load("seed-000-iot-sensor-processing.json");
  at(document, "/stages/1/modules/2/conditional_rules/0")["value"] = nullptr;
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "stages[1].modules[2].conditional_rules[0].value");
  EXPECT_EQ(error.message(),
            "stages[1].modules[2].conditional_rules[0].value: expected a string, number or "
            "boolean, got null");
  at(document, "/stages/1/modules/2/conditional_rules/0")["value"] = json::object{};
  EXPECT_EQ(parse_error(document).field(), "stages[1].modules[2].conditional_rules[0].value");
  at(document, "/stages/1/modules/2/conditional_rules/0").erase("value");
  EXPECT_EQ(parse_error(document).message(),
            "stages[1].modules[2].conditional_rules[0].value: required");
}

TEST(PipelineErrors, SizeAndAgeRulesNeedANumber) {
  Status error = parse_error(pipeline_with_rule(
      R"({"condition_type": "MessageSize", "operator": "GreaterThan", "value": "big"})"));
  EXPECT_EQ(error.field(), "stages[0].modules[0].conditional_rules[0].value");
  EXPECT_EQ(error.message(),
            "stages[0].modules[0].conditional_rules[0].value: MessageSize compares with a "
            "number, got \"big\"");
  parse_ok(pipeline_with_rule(
      R"({"condition_type": "MessageAge", "operator": "LessThan", "value": 60000})"));
}

TEST(PipelineErrors, HeaderAndPayloadRulesNeedAFieldPath) {
  Status error = parse_error(pipeline_with_rule(
      R"({"condition_type": "HeaderValue", "operator": "Equals", "value": "x"})"));
  EXPECT_EQ(error.message(), "stages[0].modules[0].conditional_rules[0].field_path: required");
}

TEST(PipelineErrors, StreamModeNeedsTwoDistinctTopics) {
  json::value document = minimal_pipeline();
  document.as_object()["mode"] = "stream";
  document.as_object()["source_topic"] = "raw-events";
  Status error = parse_error(document);
  EXPECT_EQ(error.field(), "destination_topic");
  EXPECT_EQ(error.message(), "destination_topic: required for a stream pipeline");

  document.as_object()["destination_topic"] = "raw-events";
  EXPECT_EQ(parse_error(document).message(),
            "destination_topic: must differ from source_topic (\"raw-events\")");

  json::value seed001 = load("seed-001-message-transformation.json");
  seed001.as_object().erase("destination_topic");
  EXPECT_EQ(parse_error(seed001).field(), "destination_topic");

  document.as_object()["destination_topic"] = "bad topic";
  EXPECT_EQ(parse_error(document).message(),
            "destination_topic: expected a topic name of 1-249 characters [A-Za-z0-9._-], got "
            "\"bad topic\"");

  document.as_object()["mode"] = "inline";
  document.as_object()["destination_topic"] = "other";
  EXPECT_EQ(parse_error(document).message(),
            "source_topic: only for stream pipelines (\"mode\": \"stream\")");
}

TEST(PipelineErrors, MixingTheTwoFormsIsRefused) {
  json::value seed001 = load("seed-001-message-transformation.json");
  seed001.as_object()["stages"] = minimal_pipeline().at("stages");
  Status error = parse_error(seed001);
  EXPECT_EQ(error.field(), "stages");
  EXPECT_EQ(error.message(),
            "stages: cannot be combined with pipeline_name (the single-module form of seed 001)");

  json::value seed000 = load("seed-000-iot-sensor-processing.json");
  seed000.as_object()["module_name"] = "message-processor";
  EXPECT_EQ(parse_error(seed000).field(), "name");

  seed001 = load("seed-001-message-transformation.json");
  seed001.as_object()["mode"] = "inline";
  EXPECT_EQ(parse_error(seed001).field(), "mode");
}

TEST(PipelineErrors, ValuesOutOfRangeAreRefused) {
  json::value document = minimal_pipeline();
  at(document, "/stages/0/modules/0")["instance_config"] =
      json::parse(R"({"memory_limit_bytes": 1024})");
  EXPECT_EQ(parse_error(document).message(),
            "stages[0].modules[0].instance_config.memory_limit_bytes: expected an integer from "
            "65536 to 4294967296, got 1024");

  document = minimal_pipeline();
  document.as_object()["retry_config"] = json::parse(R"({"backoff_multiplier": 0.5})");
  EXPECT_EQ(parse_error(document).message(),
            "retry_config.backoff_multiplier: expected a number from 1 to 100, got 0.5");

  document = minimal_pipeline();
  document.as_object()["retry_config"] = json::parse(R"({"max_retries": 101})");
  EXPECT_EQ(parse_error(document).field(), "retry_config.max_retries");

  document = minimal_pipeline();
  document.as_object()["retry_config"] =
      json::parse(R"({"initial_delay_ms": 1000, "max_delay_ms": 10})");
  EXPECT_EQ(parse_error(document).field(), "retry_config.max_delay_ms");

  document = minimal_pipeline();
  document.as_object()["circuit_breaker"] = json::parse(R"({"failure_threshold": 0})");
  EXPECT_EQ(parse_error(document).field(), "circuit_breaker.failure_threshold");

  document = minimal_pipeline();
  at(document, "/stages/0/modules/0")["instance_config"] =
      json::parse(R"({"cache_ttl_seconds": 2592001})");
  EXPECT_EQ(parse_error(document).field(), "stages[0].modules[0].instance_config.cache_ttl_seconds");
}

TEST(PipelineErrors, RetryPolicyAndRetryConfigAreExclusive) {
  json::value document = load("seed-001-message-transformation.json");
  document.as_object()["retry_config"] = json::object{};
  EXPECT_EQ(parse_error(document).message(),
            "configuration.retry_policy: cannot be combined with retry_config");
}

TEST(PipelineErrors, DocumentMustBeAnObject) {
  Status error = parse_text_error("[1, 2]");
  EXPECT_EQ(error.field(), "");
  EXPECT_EQ(error.message(), "expected a JSON object, got an array");
}

TEST(PipelineErrors, PathsCountStagesInDocumentOrder) {
  Status error = parse_text_error(R"({"pipeline_id": "p", "stages": [
      {"priority": 9, "modules": [{"module_id": "ok"}]},
      {"priority": 0, "modules": [{"module_id": "bad id"}]}]})");
  EXPECT_EQ(error.field(), "stages[1].modules[0].module_id");
}

// --- merge_patch: RFC 7386 ------------------------------------------------------------------

TEST(MergePatch, FollowsTheRfc7386Examples) {
  // RFC 7386, Appendix A: original, patch, result.
  const char* cases[][3] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", "null", "null"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const auto& [original, patch, result] : cases) {
    SCOPED_TRACE(std::string(original) + " + " + patch);
    json::value target = json::parse(original);
    merge_patch(target, json::parse(patch));
    EXPECT_EQ(target, json::parse(result));
  }
}

TEST(MergePatch, SeedPatchesApplyToTheCanonicalDocument) {
  PipelineSpec original = parse_ok(load("seed-000-iot-sensor-processing.json"));
  json::value document = pipeline_to_json(original);
  merge_patch(document, json::parse(R"({"configuration": {"timeout_ms": 500, "batch_size": 10}})"));
  merge_patch(document, json::parse(R"({"enabled": false})"));
  PipelineSpec patched = parse_ok(document);
  EXPECT_EQ(patched.configuration.timeout_ms, 500u);
  EXPECT_EQ(patched.configuration.batch_size, 10u);
  EXPECT_FALSE(patched.enabled);
  patched.configuration = original.configuration;
  patched.enabled = true;
  EXPECT_EQ(patched, original);
}

// --- Names ------------------------------------------------------------------------------------

TEST(PipelineNames, EnumsAreSpelledAsInTheSeeds) {
  EXPECT_EQ(filter_type_name(FilterType::kWildcard), "Wildcard");
  EXPECT_EQ(filter_type_name(FilterType::kContains), "Contains");
  EXPECT_EQ(condition_type_name(ConditionType::kMessageAge), "MessageAge");
  EXPECT_EQ(operator_name(Operator::kGreaterThanOrEqual), "GreaterThanOrEqual");
  EXPECT_EQ(operator_name(Operator::kMatches), "Matches");
  EXPECT_EQ(error_handling_name(ErrorHandling::kSendToDeadLetter), "SendToDeadLetter");
  EXPECT_EQ(pipeline_mode_name(PipelineMode::kStream), "stream");
}

}  // namespace
}  // namespace wasmq::etl

namespace wasmq::etl {
namespace {

// pipelines.md: retries go "up to max_retries (or retry_config.max_retries)".
TEST(PipelineDefaults, RetryConfigWithoutACountTakesThePipelinesMaxRetries) {
  PipelineSpec p = parse_ok(json::parse(R"({"pipeline_id": "r", "max_retries": 7,
      "error_handling": "RetryWithBackoff", "retry_config": {"initial_delay_ms": 10},
      "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})"));
  EXPECT_EQ(p.effective_max_retries(), 7u);
  PipelineSpec own = parse_ok(json::parse(R"({"pipeline_id": "r", "max_retries": 7,
      "retry_config": {"max_retries": 2},
      "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})"));
  EXPECT_EQ(own.effective_max_retries(), 2u);
}

}  // namespace
}  // namespace wasmq::etl
