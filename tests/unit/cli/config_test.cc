// The configuration loader: defaults, every section, the seeds' files, strict errors that name
// the key and its line, environment overrides, warnings, and `wasmq config check`.
#include "cli/config.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace wasmq::cli {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path kDataDir = WASMQ_TEST_DATA_DIR;
const fs::path kSourceDir = kDataDir.parent_path().parent_path();

LoadedConfig parse_ok(const std::string& text, const Environment& env = {}) {
  auto loaded = parse_config(text, "broker.toml", env);
  EXPECT_TRUE(loaded.is_ok()) << loaded.status().message();
  return loaded.is_ok() ? std::move(loaded).value() : LoadedConfig{};
}

// The one-line error of a configuration that must be refused.
std::string parse_error(const std::string& text, const Environment& env = {},
                        std::string_view source = "broker.toml") {
  auto loaded = parse_config(text, source, env);
  EXPECT_FALSE(loaded.is_ok()) << "accepted:\n" << text;
  if (loaded.is_ok()) return "";
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message().find('\n'), std::string::npos);
  return loaded.status().message();
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Config, DefaultsMatchTheDocumentedValues) {
  Config c;
  EXPECT_EQ(c.broker.data_dir, "./data");
  EXPECT_EQ(c.broker.listen, "127.0.0.1:9092");
  EXPECT_TRUE(c.broker.auto_create_topics);
  EXPECT_EQ(c.broker.default_partitions, 1u);
  EXPECT_EQ(c.broker.io_threads, 0u);
  EXPECT_EQ(c.admin.listen, "127.0.0.1:9094");
  EXPECT_EQ(c.http.max_body_bytes, 67108864u);
  EXPECT_EQ(c.storage.segment_bytes, 134217728u);
  EXPECT_EQ(c.storage.fsync, storage::FsyncPolicy::kInterval);
  EXPECT_EQ(c.storage.fsync_interval_ms, 50u);
  EXPECT_EQ(c.storage.retention_ms, 604800000);
  EXPECT_EQ(c.storage.retention_bytes, -1);
  EXPECT_EQ(c.storage.index_interval_bytes, 4096u);
  EXPECT_TRUE(c.etl.enabled);
  EXPECT_EQ(c.etl.memory_limit_bytes, 67108864u);
  EXPECT_EQ(c.etl.execution_timeout_ms, 5000u);
  EXPECT_EQ(c.etl.max_concurrent_executions, 100u);
  EXPECT_EQ(c.etl.error_topic_prefix, "etl-errors");
  EXPECT_EQ(c.etl.max_error_message_size, 1048576u);
  EXPECT_EQ(c.etl.allowed_module_sources, std::vector<std::string>{"*"});
  EXPECT_FALSE(c.etl.enable_module_signature_verification);
  EXPECT_EQ(c.etl.workers, 0u);
  EXPECT_EQ(c.etl.max_batch_size, 256u);
  EXPECT_EQ(c.etl.max_output_bytes, 16777216u);
  EXPECT_EQ(c.etl.instance_pool.max_pool_size, 50u);
  EXPECT_EQ(c.etl.instance_pool.warmup_instances, 5u);
  EXPECT_DOUBLE_EQ(c.etl.instance_pool.creation_rate_limit, 10.0);
  EXPECT_EQ(c.etl.instance_pool.idle_timeout_seconds, 300u);
  EXPECT_TRUE(c.etl_management.enabled);
  EXPECT_EQ(c.etl_management.max_pipelines_per_broker, 50u);
  EXPECT_EQ(c.etl_management.max_total_pipelines, 1000u);
  EXPECT_EQ(c.logging.level, spdlog::level::info);
  EXPECT_TRUE(c.logging.targets.empty());
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_TRUE(c.security.tokens_file.empty());

  // An empty file gives the defaults, with the paths under the data directory filled in.
  LoadedConfig loaded = parse_ok("");
  EXPECT_TRUE(loaded.warnings.empty());
  EXPECT_EQ(fs::path(loaded.config.etl.modules_path), fs::path("./data/modules"));
  EXPECT_EQ(fs::path(loaded.config.etl_management.pipeline_metadata_path),
            fs::path("./data/pipelines"));
  EXPECT_TRUE(loaded.config.etl.pipelines.empty());
}

TEST(Config, ParsesEverySection) {
  LoadedConfig loaded = parse_ok(R"(
[broker]
data_dir = "/srv/wasmq"
listen = "localhost:19092"
auto_create_topics = false
default_partitions = 4
io_threads = 2

[admin]
listen = "[::1]:19094"

[http]
max_body_bytes = 1048576

[storage]
segment_bytes = 1048576
fsync = "always"
fsync_interval_ms = 5
retention_ms = -1
retention_bytes = 1073741824
index_interval_bytes = 1024

[etl]
enabled = false
memory_limit_bytes = 33554432
execution_timeout_ms = 250
modules_path = "/srv/modules"
workers = 3
max_batch_size = 64
max_output_bytes = 65536
allowed_module_sources = ["ci", "ops"]

[etl.instance_pool]
max_pool_size = 8
warmup_instances = 2
creation_rate_limit = 2
enable_lru_eviction = false

[etl_management]
pipeline_metadata_path = "/srv/pipelines"
default_retry_attempts = 0

[logging]
level = "warn"
targets = ["etl", "storage"]
file = "/var/log/wasmq.log"
format = "json"

[security]
tokens_file = "/etc/wasmq/tokens.json"
tls_cert = "/etc/wasmq/cert.pem"
tls_key = "/etc/wasmq/key.pem"
audit_log = "/var/log/wasmq-audit.jsonl"
)");
  const Config& c = loaded.config;
  EXPECT_EQ(c.broker.data_dir, "/srv/wasmq");
  EXPECT_EQ(c.broker.listen, "localhost:19092");
  EXPECT_FALSE(c.broker.auto_create_topics);
  EXPECT_EQ(c.broker.default_partitions, 4u);
  EXPECT_EQ(c.broker.io_threads, 2u);
  EXPECT_EQ(c.admin.listen, "[::1]:19094");
  EXPECT_EQ(c.http.max_body_bytes, 1048576u);
  EXPECT_EQ(c.storage.segment_bytes, 1048576u);
  EXPECT_EQ(c.storage.fsync, storage::FsyncPolicy::kAlways);
  EXPECT_EQ(c.storage.fsync_interval_ms, 5u);
  EXPECT_EQ(c.storage.retention_ms, -1);
  EXPECT_EQ(c.storage.retention_bytes, 1073741824);
  EXPECT_EQ(c.storage.index_interval_bytes, 1024u);
  EXPECT_FALSE(c.etl.enabled);
  EXPECT_EQ(c.etl.memory_limit_bytes, 33554432u);
  EXPECT_EQ(c.etl.execution_timeout_ms, 250u);
  EXPECT_EQ(c.etl.modules_path, "/srv/modules");
  EXPECT_EQ(c.etl.workers, 3u);
  EXPECT_EQ(c.etl.max_batch_size, 64u);
  EXPECT_EQ(c.etl.max_output_bytes, 65536u);
  EXPECT_EQ(c.etl.allowed_module_sources, (std::vector<std::string>{"ci", "ops"}));
  EXPECT_EQ(c.etl.instance_pool.max_pool_size, 8u);
  EXPECT_EQ(c.etl.instance_pool.warmup_instances, 2u);
  EXPECT_DOUBLE_EQ(c.etl.instance_pool.creation_rate_limit, 2.0);  // an integer is a number
  EXPECT_FALSE(c.etl.instance_pool.enable_lru_eviction);
  EXPECT_EQ(c.etl_management.pipeline_metadata_path, "/srv/pipelines");
  EXPECT_EQ(c.etl_management.default_retry_attempts, 0u);
  EXPECT_EQ(c.logging.level, spdlog::level::warn);
  EXPECT_EQ(c.logging.targets, (std::vector<std::string>{"etl", "storage"}));
  EXPECT_EQ(c.logging.file, "/var/log/wasmq.log");
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.security.tokens_file, "/etc/wasmq/tokens.json");
  EXPECT_EQ(c.security.tls_cert, "/etc/wasmq/cert.pem");
  EXPECT_EQ(c.security.tls_key, "/etc/wasmq/key.pem");
  EXPECT_EQ(c.security.audit_log, "/var/log/wasmq-audit.jsonl");
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST(Config, LoadsTheSeedBrokerConfigurationWithItsPipelineIntact) {
  const fs::path file = kDataDir / "config" / "seed-000-broker.toml";
  auto loaded = load_config(file, {});
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  const Config& c = loaded->config;
  EXPECT_EQ(c.etl.modules_path, "/var/lib/rustmq/wasm");
  EXPECT_EQ(c.etl.gc_interval_ms, 60000u);
  EXPECT_EQ(c.etl.max_idle_instances, 10u);
  EXPECT_EQ(c.etl.memory_warning_threshold_percent, 80u);
  EXPECT_EQ(c.etl.cpu_warning_threshold_percent, 90u);
  EXPECT_EQ(c.etl.module_cache_size, 50u);
  EXPECT_EQ(c.etl.module_cache_ttl_seconds, 3600u);
  EXPECT_TRUE(c.etl.enable_error_topic);
  EXPECT_TRUE(c.etl.sandbox_strict_mode);
  EXPECT_FALSE(c.etl.enable_debug_logging);
  EXPECT_TRUE(c.etl.log_execution_times);
  EXPECT_TRUE(c.etl.log_memory_usage);
  EXPECT_TRUE(c.etl.instance_pool.enable_background_cleanup);

  ASSERT_EQ(c.etl.pipelines.size(), 1u);
  ASSERT_EQ(c.etl.pipeline_lines, std::vector<uint32_t>{57});
  const json::object& p = c.etl.pipelines[0].as_object();
  EXPECT_EQ(p.at("pipeline_id"), "default-enrichment");
  EXPECT_EQ(p.at("name"), "Default Message Enrichment Pipeline");
  EXPECT_EQ(p.at("enabled"), true);
  EXPECT_EQ(p.at("global_timeout_ms"), 10000);
  EXPECT_EQ(p.at("max_retries"), 3);
  EXPECT_EQ(p.at("error_handling"), "SkipModule");
  const json::array& stages = p.at("stages").as_array();
  ASSERT_EQ(stages.size(), 3u);
  EXPECT_EQ(stages[0].at("priority"), 0);
  EXPECT_EQ(stages[1].at("parallel_execution"), true);
  EXPECT_EQ(stages[2].at("continue_on_error"), false);
  const json::array& enrichers = stages[1].at("modules").as_array();
  ASSERT_EQ(enrichers.size(), 2u);
  EXPECT_EQ(enrichers[0].at("module_id"), "geolocation-enricher");
  EXPECT_EQ(enrichers[0].at("topic_filters").at(0).at("pattern"),
            "^(events|logs)\\.(mobile|web)\\.");
  const json::value& rule = enrichers[0].at("conditional_rules").at(0);
  EXPECT_EQ(rule.at("condition_type"), "HeaderValue");
  EXPECT_EQ(rule.at("field_path"), "client_ip");
  EXPECT_EQ(rule.at("operator"), "Contains");
  EXPECT_EQ(rule.at("value"), ".");
  EXPECT_EQ(rule.at("negate"), false);
  EXPECT_EQ(enrichers[1].at("topic_filters").at(0).at("filter_type"), "Suffix");
  EXPECT_EQ(stages[2].at("modules").at(0).at("topic_filters").at(0).at("pattern"), "*");
  EXPECT_EQ(stages[0].at("modules").at(0).at("topic_filters").at(0).at("case_sensitive"), false);
}

TEST(Config, AcceptsTheSeedControllerSection) {
  LoadedConfig loaded = parse_ok(R"([etl_management]
# Enable ETL pipeline management APIs
enabled = true

# Pipeline metadata storage
pipeline_metadata_path = "/var/lib/rustmq/etl/pipelines"

# Default pipeline settings
default_batch_size = 1
default_timeout_ms = 5000
default_retry_attempts = 3

# Pipeline monitoring
health_check_interval_ms = 30000  # 30 seconds
metrics_collection_interval_ms = 10000  # 10 seconds

# Resource limits per pipeline
max_pipelines_per_broker = 50
max_total_pipelines = 1000
)");
  const EtlManagementSection& m = loaded.config.etl_management;
  EXPECT_EQ(m.pipeline_metadata_path, "/var/lib/rustmq/etl/pipelines");
  EXPECT_EQ(m.default_batch_size, 1u);
  EXPECT_EQ(m.default_timeout_ms, 5000u);
  EXPECT_EQ(m.health_check_interval_ms, 30000u);
  EXPECT_EQ(m.metrics_collection_interval_ms, 10000u);
}

TEST(Config, AcceptsTheSeedLoggingSectionAndItsRustTargetNames) {
  LoadedConfig loaded = parse_ok("[logging]\nlevel = \"debug\"\ntargets = [\"rustmq::etl\"]\n");
  EXPECT_EQ(loaded.config.logging.level, spdlog::level::debug);
  EXPECT_EQ(loaded.config.logging.targets, std::vector<std::string>{"etl"});
}

TEST(Config, KeepsPipelinesWrittenAsInlineTables) {
  LoadedConfig loaded = parse_ok(
      "[etl]\n"
      "pipelines = [{pipeline_id = \"a\", stages = [{priority = 0, modules = [{module_id = "
      "\"m\"}]}]}, {pipeline_id = \"b\", stages = [{priority = 0, modules = [{module_id = "
      "\"m\"}]}]}]\n");
  ASSERT_EQ(loaded.config.etl.pipelines.size(), 2u);
  EXPECT_EQ(loaded.config.etl.pipelines[1].at("pipeline_id"), "b");
  EXPECT_EQ(loaded.config.etl.pipeline_lines, (std::vector<uint32_t>{2, 2}));
}

// [[etl.pipelines]] tables are checked by the pipeline API's own parser: an error names the
// table's line and the field's path.
TEST(Config, RejectsAnInvalidPipelineNamingItsLineAndField) {
  auto loaded = parse_config(
      "[etl]\nenabled = true\n\n[[etl.pipelines]]\npipeline_id = \"p\"\n"
      "[[etl.pipelines.stages]]\npriority = 0\n[[etl.pipelines.stages.modules]]\n"
      "module_id = \"m\"\n[[etl.pipelines.stages.modules.topic_filters]]\n"
      "filter_type = \"Regex\"\npattern = \"(open\"\n",
      "broker.toml", {});
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_EQ(loaded.status().message().rfind(
                "broker.toml:4: etl.pipelines[0]: stages[0].modules[0].topic_filters[0].pattern: "
                "invalid regex: missing )",
                0),
            0u)
      << loaded.status().message();
}

TEST(Config, RejectsTwoPipelinesWithOneId) {
  const std::string table =
      "[[etl.pipelines]]\npipeline_id = \"p\"\n[[etl.pipelines.stages]]\npriority = 0\n"
      "[[etl.pipelines.stages.modules]]\nmodule_id = \"m\"\n";
  auto loaded = parse_config(table + table, "broker.toml", {});
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_NE(
      loaded.status().message().find("etl.pipelines[1]: pipeline_id \"p\" is used by another"),
      std::string::npos)
      << loaded.status().message();
}

TEST(Config, RejectsUnknownTopLevelKey) {
  EXPECT_EQ(
      parse_error("[broker]\nlisten = \"127.0.0.1:1\"\n\nbrokers_count = 1\n", {}, "broker.toml"),
      "broker.toml:4: broker.brokers_count: unknown key");
  EXPECT_EQ(parse_error("verbose = true\n"), "broker.toml:1: verbose: unknown key");
  EXPECT_EQ(parse_error("\n[brokr]\ndata_dir = \"x\"\n"),
            "broker.toml:2: brokr: unknown key (did you mean broker?)");
}

TEST(Config, RejectsUnknownNestedKeyNamingItsPathAndLine) {
  EXPECT_EQ(parse_error("[broker]\ndata_dir = \"./data\"\nlistn = \"127.0.0.1:9092\"\n"),
            "broker.toml:3: broker.listn: unknown key (did you mean broker.listen?)");
  // A dotted key reaches the same key path.
  EXPECT_EQ(parse_error("etl.enabeld = true\n"),
            "broker.toml:1: etl.enabeld: unknown key (did you mean etl.enabled?)");
  // A quoted key with a dot is one key, not a path.
  EXPECT_EQ(parse_error("[broker]\n\"auto.create\" = true\n"),
            "broker.toml:2: broker.auto.create: unknown key");
  // A key with a line break still gives a one-line message.
  EXPECT_EQ(parse_error("[broker]\n\"a\\nb\" = true\n"),
            "broker.toml:2: \"broker.a\\nb\": unknown key");
}

TEST(Config, RejectsUnknownKeyInsideTheInstancePool) {
  EXPECT_EQ(parse_error("[etl]\nenabled = true\n\n[etl.instance_pool]\nmax_pool_size = 5\n"
                        "max_pool = 6\n"),
            "broker.toml:6: etl.instance_pool.max_pool: unknown key");
}

TEST(Config, RejectsWrongType) {
  EXPECT_EQ(parse_error("[broker]\ndefault_partitions = \"one\"\n"),
            "broker.toml:2: broker.default_partitions: expected an integer between 1 and 1024, "
            "got \"one\"");
  EXPECT_EQ(parse_error("[etl]\nenabled = \"yes\"\n"),
            "broker.toml:2: etl.enabled: expected true or false, got \"yes\"");
  EXPECT_EQ(parse_error("[etl]\nmax_batch_size = 10.5\n"),
            "broker.toml:2: etl.max_batch_size: expected an integer between 1 and 65536, got "
            "10.5");
  EXPECT_EQ(parse_error("[etl]\nallowed_module_sources = \"*\"\n"),
            "broker.toml:2: etl.allowed_module_sources: expected an array of strings, each a "
            "non-empty string, got \"*\"");
  EXPECT_EQ(parse_error("[logging]\ntargets = [1, 2]\n").substr(0, 31),
            "broker.toml:2: logging.targets:");
  EXPECT_EQ(parse_error("broker = 5\n"),
            "broker.toml:1: broker: expected a table ([broker]), got 5");
  EXPECT_EQ(parse_error("[etl]\n[etl.pipelines]\npipeline_id = \"x\"\n"),
            "broker.toml:2: etl.pipelines: expected an array of tables ([[etl.pipelines]]), got "
            "a table");
  EXPECT_EQ(parse_error("[etl]\npipelines = [1]\n"),
            "broker.toml:2: etl.pipelines[0]: expected a table, got 1");
  EXPECT_EQ(parse_error("[broker.listen]\nhost = \"x\"\n"),
            "broker.toml:1: broker.listen: expected host:port with a port between 0 and 65535 (0: "
            "any free port), "
            "got a table");
}

TEST(Config, RejectsOutOfRangeValues) {
  EXPECT_EQ(parse_error("[etl]\nmemory_limit_bytes = 1024\n"),
            "broker.toml:2: etl.memory_limit_bytes: expected an integer between 1048576 and "
            "4294967296 (1 MiB to 4 GiB), got 1024");
  EXPECT_EQ(parse_error("[etl]\nmemory_limit_bytes = 4294967297\n").substr(0, 38),
            "broker.toml:2: etl.memory_limit_bytes:");
  EXPECT_EQ(parse_error("[storage]\nsegment_bytes = 4096\n"),
            "broker.toml:2: storage.segment_bytes: expected an integer between 1048576 and "
            "1073741824 (1 MiB to 1 GiB), got 4096");
  EXPECT_EQ(parse_error("[storage]\nretention_ms = 0\n"),
            "broker.toml:2: storage.retention_ms: expected -1 (no limit) or a positive integer, "
            "got 0");
  EXPECT_EQ(parse_error("[etl]\nmemory_warning_threshold_percent = 101\n").substr(0, 52),
            "broker.toml:2: etl.memory_warning_threshold_percent:");
  EXPECT_EQ(parse_error("[etl.instance_pool]\ncreation_rate_limit = 0.0\n"),
            "broker.toml:2: etl.instance_pool.creation_rate_limit: expected a number between 0.1 "
            "and 100000, got 0.0");
  EXPECT_EQ(parse_error("[etl]\nerror_topic_prefix = \"etl errors\"\n"),
            "broker.toml:2: etl.error_topic_prefix: expected a topic name: 1 to 249 letters, "
            "digits, '.', '_' or '-', got \"etl errors\"");
  EXPECT_EQ(parse_error("[broker]\ndata_dir = \"\"\n"),
            "broker.toml:2: broker.data_dir: expected a non-empty path, got \"\"");
  for (const char* listen :
       {"127.0.0.1", "127.0.0.1:65536", ":9092", "::1:9092", "127.0.0.1:90x", "host name:1"}) {
    EXPECT_EQ(parse_error(std::string("[admin]\nlisten = \"") + listen + "\"\n"),
              std::string("broker.toml:2: admin.listen: expected host:port with a port between "
                          "0 and 65535 (0: any free port), got \"") +
                  listen + "\"");
  }
}

TEST(Config, RejectsBadEnumValue) {
  std::string text = "[broker]\ndata_dir = \"./data\"\n";
  for (int line = 3; line < 11; ++line) text += "\n";
  text += "[storage]\nfsync = \"sometimes\"\n";  // line 12
  EXPECT_EQ(parse_error(text, {}, "config/broker.toml"),
            "config/broker.toml:12: storage.fsync: expected \"always\" or \"interval\", got "
            "\"sometimes\"");
  EXPECT_EQ(parse_error("[logging]\nlevel = \"verbose\"\n"),
            "broker.toml:2: logging.level: expected one of \"trace\", \"debug\", \"info\", "
            "\"warn\", \"error\", got \"verbose\"");
  EXPECT_EQ(parse_error("[logging]\nformat = \"xml\"\n"),
            "broker.toml:2: logging.format: expected \"text\" or \"json\", got \"xml\"");
}

TEST(Config, RejectsKeysThatContradictEachOther) {
  EXPECT_EQ(parse_error("[etl.instance_pool]\nmax_pool_size = 4\nwarmup_instances = 8\n"),
            "broker.toml:3: etl.instance_pool.warmup_instances: expected at most "
            "etl.instance_pool.max_pool_size (4), got 8");
  EXPECT_EQ(parse_error("[security]\ntls_cert = \"c.pem\"\n"),
            "broker.toml:2: security.tls_cert: needs security.tls_key as well (TLS takes a "
            "certificate and a key)");
  EXPECT_EQ(parse_error("[admin]\nlisten = \"127.0.0.1:9092\"\n"),
            "broker.toml:2: admin.listen: expected an address other than broker.listen "
            "(127.0.0.1:9092), got \"127.0.0.1:9092\"");
  EXPECT_EQ(parse_error("[etl_management]\nmax_pipelines_per_broker = 1\n[[etl.pipelines]]\n"
                        "pipeline_id = \"a\"\n[[etl.pipelines]]\npipeline_id = \"b\"\n"),
            "broker.toml:5: etl.pipelines[1]: more pipelines than "
            "etl_management.max_pipelines_per_broker (1)");
}

TEST(Config, ReportsTomlSyntaxErrorsWithLineAndColumn) {
  std::string message = parse_error("[broker]\ndata_dir = \"./data\"\nlisten = 127.0.0.1:9092\n");
  EXPECT_EQ(message.rfind("broker.toml:3:12: ", 0), 0u) << message;  // where 127.0.0.1 breaks
  message = parse_error("[broker]\ndata_dir = \"a\"\ndata_dir = \"b\"\n");
  EXPECT_EQ(message.rfind("broker.toml:3:", 0), 0u) << message;
  message = parse_error("[etl\nenabled = true\n");
  EXPECT_EQ(message.rfind("broker.toml:1:", 0), 0u) << message;
}

TEST(Config, EnvironmentOverridesTheFile) {
  Environment env = {{"WASMQ_BROKER_DATA_DIR", "/tmp/x"},
                     {"WASMQ_STORAGE_FSYNC", "always"},
                     {"WASMQ_ETL_INSTANCE_POOL_MAX_POOL_SIZE", "5"},
                     {"WASMQ_ETL_INSTANCE_POOL_CREATION_RATE_LIMIT", "2.5"},
                     {"WASMQ_ETL_ENABLED", "false"},
                     {"WASMQ_ETL_ALLOWED_MODULE_SOURCES", "ci, ops"},
                     {"WASMQ_LOGGING_TARGETS", ""},
                     {"WASMQ_V8_FLAGS", "--no-opt"}};  // not a configuration variable
  LoadedConfig loaded = parse_ok(
      "[broker]\ndata_dir = \"/srv/file\"\n[storage]\nfsync = \"interval\"\n"
      "[logging]\ntargets = [\"etl\"]\n",
      env);
  const Config& c = loaded.config;
  EXPECT_EQ(c.broker.data_dir, "/tmp/x");
  EXPECT_EQ(fs::path(c.etl.modules_path), fs::path("/tmp/x/modules"));
  EXPECT_EQ(c.storage.fsync, storage::FsyncPolicy::kAlways);
  EXPECT_EQ(c.etl.instance_pool.max_pool_size, 5u);
  EXPECT_DOUBLE_EQ(c.etl.instance_pool.creation_rate_limit, 2.5);
  EXPECT_FALSE(c.etl.enabled);
  EXPECT_EQ(c.etl.allowed_module_sources, (std::vector<std::string>{"ci", "ops"}));
  EXPECT_TRUE(c.logging.targets.empty());
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST(Config, RejectsABadEnvironmentValueNamingTheVariable) {
  EXPECT_EQ(parse_error("", {{"WASMQ_STORAGE_FSYNC", "sometimes"}}),
            "WASMQ_STORAGE_FSYNC: storage.fsync: expected \"always\" or \"interval\", got "
            "\"sometimes\"");
  EXPECT_EQ(parse_error("", {{"WASMQ_ETL_INSTANCE_POOL_MAX_POOL_SIZE", "five"}}),
            "WASMQ_ETL_INSTANCE_POOL_MAX_POOL_SIZE: etl.instance_pool.max_pool_size: expected an "
            "integer between 0 and 10000, got \"five\"");
  EXPECT_EQ(parse_error("", {{"WASMQ_ETL_MEMORY_LIMIT_BYTES", "64MB"}}).substr(0, 30),
            "WASMQ_ETL_MEMORY_LIMIT_BYTES: ");
  EXPECT_EQ(parse_error("", {{"WASMQ_BROKER_AUTO_CREATE_TOPICS", "yes"}}),
            "WASMQ_BROKER_AUTO_CREATE_TOPICS: broker.auto_create_topics: expected true or false, "
            "got \"yes\"");
  // A cross-key error caused by the environment names the variable.
  EXPECT_EQ(parse_error("", {{"WASMQ_ETL_INSTANCE_POOL_MAX_POOL_SIZE", "2"}}),
            "broker.toml: etl.instance_pool.warmup_instances: expected at most "
            "etl.instance_pool.max_pool_size (2), got 5");
  EXPECT_EQ(parse_error("", {{"WASMQ_SECURITY_TLS_KEY", "k.pem"}}).substr(0, 40),
            "WASMQ_SECURITY_TLS_KEY: security.tls_key");
}

TEST(Config, WarnsAboutAMisspeltVariableOfAKnownSection) {
  LoadedConfig loaded = parse_ok("", {{"WASMQ_BROKER_DATA_DRI", "/tmp/x"}});
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_EQ(loaded.warnings[0], "WASMQ_BROKER_DATA_DRI: not a configuration variable; ignored");
  EXPECT_EQ(loaded.config.broker.data_dir, "./data");
}

TEST(Config, WarnsAboutAListenerOpenToTheNetworkWithoutTokens) {
  LoadedConfig open = parse_ok("[broker]\nlisten = \"0.0.0.0:9092\"\n");
  ASSERT_EQ(open.warnings.size(), 1u);
  EXPECT_NE(open.warnings[0].find("broker.listen = \"0.0.0.0:9092\""), std::string::npos);
  EXPECT_NE(open.warnings[0].find("security.tokens_file is not set"), std::string::npos);

  LoadedConfig both =
      parse_ok("", {{"WASMQ_BROKER_LISTEN", "10.0.0.5:9092"}, {"WASMQ_ADMIN_LISTEN", "[::]:9094"}});
  ASSERT_EQ(both.warnings.size(), 2u);
  EXPECT_NE(both.warnings[1].find("admin.listen"), std::string::npos);

  LoadedConfig protected_config = parse_ok(
      "[broker]\nlisten = \"0.0.0.0:9092\"\n[security]\ntokens_file = \"/etc/wasmq/tokens\"\n"
      "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
  EXPECT_TRUE(protected_config.warnings.empty());
  EXPECT_TRUE(parse_ok("[broker]\nlisten = \"localhost:9092\"\n").warnings.empty());
}

TEST(Config, WarnsThatTokensCrossTheNetworkInClearWithoutTls) {
  LoadedConfig clear = parse_ok(
      "[broker]\nlisten = \"0.0.0.0:9092\"\n[security]\ntokens_file = \"/etc/wasmq/tokens\"\n");
  ASSERT_EQ(clear.warnings.size(), 1u);
  EXPECT_NE(clear.warnings[0].find("broker.listen"), std::string::npos);
  EXPECT_NE(clear.warnings[0].find("clear text"), std::string::npos) << clear.warnings[0];
  EXPECT_TRUE(
      parse_ok("[security]\ntokens_file = \"/etc/wasmq/tokens\"\n").warnings.empty());  // loopback
}

TEST(Config, ReadsModuleSigningKeysAndNeedsThemForSignatureVerification) {
  LoadedConfig signing = parse_ok(
      "[etl]\nenable_module_signature_verification = true\n"
      "[security]\nmodule_signing_keys = [\"keys/team.pub.pem\", \"keys/ci.pub.pem\"]\n");
  EXPECT_TRUE(signing.config.etl.enable_module_signature_verification);
  EXPECT_EQ(signing.config.security.module_signing_keys,
            (std::vector<std::string>{"keys/team.pub.pem", "keys/ci.pub.pem"}));
  EXPECT_EQ(parse_error("[etl]\nenable_module_signature_verification = true\n"),
            "broker.toml:2: etl.enable_module_signature_verification: needs "
            "security.module_signing_keys (the Ed25519 public keys that may sign modules)");
  EXPECT_EQ(parse_error("[security]\nmodule_signing_keys = [\"\"]\n"),
            "broker.toml:2: security.module_signing_keys: expected an array of strings, each a "
            "non-empty path, got [\"\"]");
}

TEST(Config, TheKafkaListenerIsCheckedAgainstTheOthersAndTheSecuritySettings) {
  EXPECT_TRUE(parse_ok("[kafka]\nlisten = \"\"\n").config.kafka.listen.empty());
  EXPECT_EQ(parse_ok("[kafka]\nlisten = \"0.0.0.0:19093\"\nadvertised_listener = \"kafka.example:9093\"\n")
                .config.kafka.advertised_listener,
            "kafka.example:9093");
  EXPECT_EQ(parse_error("[kafka]\nlisten = \"127.0.0.1:9092\"\n"),
            "broker.toml:2: kafka.listen: expected an address other than broker.listen, got "
            "\"127.0.0.1:9092\"");
  EXPECT_EQ(parse_error("[kafka]\nlisten = \"nine\"\n"),
            "broker.toml:2: kafka.listen: expected host:port with a port between 0 and 65535, or "
            "\"\" (off), got \"nine\"");
  EXPECT_EQ(parse_error("[kafka]\nlisten = \"127.0.0.1:9093\"\nadvertised_listener = \"h:0\"\n"),
            "broker.toml:3: kafka.advertised_listener: expected host:port with a port between 1 and "
            "65535, or \"\" (the listen address), got \"h:0\"");
}

TEST(Config, ShippedDefaultFilePassesAndHoldsTheDefaults) {
  auto loaded = load_config(kSourceDir / "config" / "broker.toml", {});
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->warnings.empty());
  EXPECT_TRUE(loaded->config.etl.enabled);
  EXPECT_TRUE(loaded->config.etl.pipelines.empty());
  // One difference, on purpose: the shipped file turns the Kafka listener on (`make run` serves
  // it); built in it is off, so that a configuration without [kafka] starts as before.
  EXPECT_EQ(loaded->config.kafka.listen, "127.0.0.1:9093");
  Config shipped = loaded->config;
  shipped.kafka.listen = "";
  EXPECT_EQ(json::serialize(effective_config_json(shipped)),
            json::serialize(effective_config_json(parse_ok("").config)));
}

TEST(Config, ReportsAFileThatCannotBeRead) {
  auto loaded = load_config(kDataDir / "config" / "no-such-file.toml", {});
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kIo);
  EXPECT_NE(loaded.status().message().find("no-such-file.toml: cannot open"), std::string::npos);
}

TEST(Config, EffectiveConfigShowsEveryKeyAndRedactsOnlySecrets) {
  LoadedConfig loaded = parse_ok(
      "[security]\ntokens_file = \"/etc/wasmq/tokens\"\n[[etl.pipelines]]\npipeline_id = \"a\"\n"
      "[[etl.pipelines.stages]]\npriority = 0\n[[etl.pipelines.stages.modules]]\nmodule_id = "
      "\"m\"\n");
  json::object effective = effective_config_json(loaded.config);
  for (const ConfigKeyInfo& key : config_keys()) {
    const json::value* at = &effective.at(key.path.substr(0, key.path.find('.')));
    std::string_view rest = std::string_view(key.path).substr(key.path.find('.') + 1);
    for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
      at = &at->at(rest.substr(0, dot));
      rest.remove_prefix(dot + 1);
    }
    ASSERT_TRUE(at->as_object().contains(rest)) << key.path;
    if (key.secret) {
      EXPECT_EQ(at->at(rest), json::value(kRedacted)) << key.path;
    }
  }
  EXPECT_EQ(effective.at("security").at("tokens_file"), "/etc/wasmq/tokens");  // a path
  EXPECT_EQ(effective.at("storage").at("fsync"), "interval");
  EXPECT_EQ(effective.at("logging").at("level"), "info");
  EXPECT_EQ(effective.at("etl").at("pipelines").at(0).at("pipeline_id"), "a");
}

TEST(Config, EveryKeyHasItsOwnVariableAndIsDocumented) {
  const std::string docs = slurp(kSourceDir / "docs" / "configuration.md");
  std::set<std::string> variables;
  for (const ConfigKeyInfo& key : config_keys()) {
    EXPECT_TRUE(variables.insert(key.env_variable).second) << key.env_variable;
    std::string name = key.path.substr(key.path.rfind('.') + 1);
    EXPECT_NE(docs.find("`" + name + "`"), std::string::npos) << key.path << " is not documented";
  }
  EXPECT_TRUE(variables.count("WASMQ_ETL_INSTANCE_POOL_MAX_POOL_SIZE"));
  EXPECT_TRUE(variables.count("WASMQ_ETL_MANAGEMENT_MAX_TOTAL_PIPELINES"));
}

TEST(ListenAddress, SplitsHostAndPort) {
  auto v4 = parse_listen_address("127.0.0.1:9092");
  ASSERT_TRUE(v4.is_ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9092);
  auto v6 = parse_listen_address("[::1]:1");
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 1);
  EXPECT_TRUE(parse_listen_address("broker-1.internal:65535").is_ok());
  EXPECT_FALSE(parse_listen_address("[]:1").is_ok());
  EXPECT_FALSE(parse_listen_address("a:-1").is_ok());
}

TEST(ListenAddress, KnowsLoopbackHosts) {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1"}) {
    EXPECT_TRUE(is_loopback_host(host)) << host;
  }
  for (const char* host :
       {"0.0.0.0", "::", "10.0.0.1", "127.0.0", "127.0.0.256", "127.example.com", "example.com"}) {
    EXPECT_FALSE(is_loopback_host(host)) << host;
  }
}

// `wasmq config check` as a user runs it.
struct CommandRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandRun run_config_check(const fs::path& file, const std::string& env = "") {
  fs::path dir = fs::temp_directory_path() / ("wasmq-config-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string cmd = env + " " + shell_quote(WASMQ_BINARY) + " config check " +
                    shell_quote(file.string()) + " >" + shell_quote((dir / "out").string()) +
                    " 2>" + shell_quote((dir / "err").string());
  CommandRun r;
  int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  fs::remove_all(dir);
  return r;
}

class ConfigCheckCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wasmq-config-files-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }

  fs::path dir_;
};

TEST_F(ConfigCheckCommand, PrintsOkForAGoodFile) {
  fs::path file = kSourceDir / "config" / "broker.toml";
  CommandRun r = run_config_check(file);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, file.string() + ": ok\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(ConfigCheckCommand, PrintsTheOneLineErrorAndExitsOneForABadFile) {
  fs::path file = write("bad.toml", "[broker]\nlisten = \"127.0.0.1:9092\"\nlistn = 1\n");
  CommandRun r = run_config_check(file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: " + file.string() +
                       ":3: broker.listn: unknown key (did you mean broker.listen?)\n");
}

TEST_F(ConfigCheckCommand, AppliesTheEnvironmentAndPrintsWarnings) {
  fs::path file = write("open.toml", "[broker]\nlisten = \"0.0.0.0:9092\"\n");
  CommandRun r = run_config_check(file);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, file.string() + ": ok\n");
  EXPECT_NE(r.err.find("warning: broker.listen"), std::string::npos) << r.err;

  r = run_config_check(file, "WASMQ_STORAGE_FSYNC=sometimes");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: WASMQ_STORAGE_FSYNC: storage.fsync:", 0), 0u) << r.err;
}

}  // namespace
}  // namespace wasmq::cli
