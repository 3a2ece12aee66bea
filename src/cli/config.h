// The broker's configuration: one TOML file, overridden by WASMQ_<SECTION>_<KEY> environment
// variables, checked strictly. Precedence: built-in defaults < file < environment.
//
// Every section is a plain struct whose member initializers are the defaults; member names are
// the TOML key names. `[[etl.pipelines]]` tables are not interpreted here: they are kept as JSON
// documents (the shape of the pipeline API) for the ETL layer to validate.
#pragma once

#include <spdlog/common.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/partition_log.h"

namespace wasmq::cli {

// [broker]: the data API and where data lives.
struct BrokerSection {
  std::string data_dir = "./data";        // topics, modules, pipeline metadata
  std::string listen = "127.0.0.1:9092";  // data API, host:port
  bool auto_create_topics = true;
  uint32_t default_partitions = 1;
  uint32_t io_threads = 0;  // 0: hardware threads
  uint32_t max_topics = 10'000;  // creating more (explicitly or automatically) is refused
  uint32_t max_connections = 10'000;  // data API connections served at once
};

// [admin]: the admin API.
struct AdminSection {
  std::string listen = "127.0.0.1:9094";
  uint32_t max_connections = 256;  // admin API connections served at once
};

// [kafka]: the Kafka protocol listener (docs/kafka.md).
struct KafkaSection {
  std::string listen;               // host:port; empty: no Kafka listener
  std::string advertised_listener;  // host:port put in Metadata; empty: listen's
  uint64_t max_request_bytes = 100ull * 1024 * 1024;  // larger frames close the connection
};

// [http]: limits shared by both HTTP listeners.
struct HttpSection {
  uint64_t max_body_bytes = 64ull * 1024 * 1024;
};

// [storage]: defaults of every partition log.
struct StorageSection {
  uint64_t segment_bytes = 128ull * 1024 * 1024;
  storage::FsyncPolicy fsync = storage::FsyncPolicy::kInterval;
  uint32_t fsync_interval_ms = 50;
  int64_t retention_ms = 7ll * 24 * 3600 * 1000;  // -1: keep forever
  int64_t retention_bytes = -1;                   // -1: no size bound
  uint32_t index_interval_bytes = 4096;
  uint32_t max_open_files = 1024;  // segment descriptors kept open across all partitions
};

// [etl.instance_pool]: module instances kept between calls, per module and ETL worker.
struct InstancePoolSection {
  uint32_t max_pool_size = 50;          // idle instances kept; 0: none (every call instantiates)
  uint32_t warmup_instances = 5;        // never more than max_pool_size
  double creation_rate_limit = 10.0;    // new instances per second, per module
  uint64_t idle_timeout_seconds = 300;  // an idle instance is dropped after this
  bool enable_lru_eviction = true;
  bool enable_background_cleanup = true;
  uint64_t max_memory_bytes = 1ull << 30;  // memory of all instances of one worker
};

// [etl]: the WebAssembly engine and the defaults of every module.
struct EtlSection {
  bool enabled = true;
  uint64_t memory_limit_bytes = 64ull * 1024 * 1024;
  uint64_t execution_timeout_ms = 5000;
  uint32_t max_concurrent_executions = 100;
  std::string modules_path;  // empty in the file: <broker.data_dir>/modules (filled in by load)
  bool enable_metrics = true;
  uint64_t gc_interval_ms = 60000;
  uint32_t max_idle_instances = 10;
  uint32_t memory_warning_threshold_percent = 80;
  uint32_t cpu_warning_threshold_percent = 90;
  uint32_t module_cache_size = 50;
  uint64_t module_cache_ttl_seconds = 3600;
  uint64_t module_compile_timeout_ms = 5'000;               // an upload's compile check
  uint64_t module_compile_max_memory_bytes = 512ull << 20;  // its child process's resident memory
  bool enable_error_topic = true;
  std::string error_topic_prefix = "etl-errors";
  uint64_t max_error_message_size = 1024 * 1024;
  bool enable_module_signature_verification = false;
  std::vector<std::string> allowed_module_sources = {"*"};
  bool sandbox_strict_mode = true;
  bool enable_debug_logging = false;
  bool log_execution_times = true;
  bool log_memory_usage = true;
  uint32_t workers = 0;  // ETL worker threads, each with its own isolate; 0: hardware threads
  uint32_t max_batch_size = 256;  // messages per process_batch call
  uint64_t max_output_bytes = 16ull * 1024 * 1024;
  uint32_t max_queued_batches = 64;                  // produce batches admitted for the workers
  uint64_t max_queued_bytes = 256ull * 1024 * 1024;  // their bytes
  uint64_t result_cache_max_bytes = 64ull * 1024 * 1024;  // module result caches, all workers
  InstancePoolSection instance_pool;

  // The `[[etl.pipelines]]` tables as JSON objects, unvalidated: pipelines[i] starts at line
  // pipeline_lines[i] of the file. TOML dates and times become strings.
  boost::json::array pipelines;
  std::vector<uint32_t> pipeline_lines;
};

// [etl_management]: the pipeline management API and its defaults.
struct EtlManagementSection {
  bool enabled = true;
  std::string pipeline_metadata_path;  // empty in the file: <broker.data_dir>/pipelines
  uint32_t default_batch_size = 1;
  uint64_t default_timeout_ms = 5000;
  uint32_t default_retry_attempts = 3;
  uint64_t health_check_interval_ms = 30000;
  uint64_t metrics_collection_interval_ms = 10000;
  uint32_t max_pipelines_per_broker = 50;
  uint32_t max_total_pipelines = 1000;
};

enum class LogFormat { kText, kJson };

// [logging]: `level` applies to the listed `targets`, or to every target when the list is empty.
struct LoggingSection {
  spdlog::level::level_enum level = spdlog::level::info;
  std::vector<std::string> targets;  // empty: all
  std::string file;                  // empty: standard error
  LogFormat format = LogFormat::kText;
};

// [security]: paths only; an empty path means the feature is off.
struct SecuritySection {
  std::string tokens_file;  // bearer tokens with roles; empty: no authentication
  std::string tls_cert;     // set together with tls_key
  std::string tls_key;
  std::string audit_log;  // JSON lines of every admin change
  uint64_t audit_log_max_bytes = 64ull * 1024 * 1024;  // rotated to <audit_log>.1 at this size
  // Ed25519 public keys (PEM) trusted to sign modules, for
  // etl.enable_module_signature_verification.
  std::vector<std::string> module_signing_keys;
};

// The whole configuration. A default-constructed Config holds the built-in defaults (with
// etl.modules_path and etl_management.pipeline_metadata_path still empty).
struct Config {
  BrokerSection broker;
  AdminSection admin;
  KafkaSection kafka;
  HttpSection http;
  StorageSection storage;
  EtlSection etl;
  EtlManagementSection etl_management;
  LoggingSection logging;
  SecuritySection security;
};

// A checked configuration and what the caller should log about it (for example a listener open
// to the network without authentication).
struct LoadedConfig {
  Config config;
  std::vector<std::string> warnings;
};

// Environment variables as name → value. Only WASMQ_* names are read.
using Environment = std::map<std::string, std::string, std::less<>>;

// The WASMQ_* variables of this process.
Environment process_environment();

// Reads and checks the TOML file at `path`, then applies `environment` overrides. On failure the
// Status (kInvalidArgument, or kIo when the file cannot be read) carries one line:
// "<path>:<line>: <key>: <what is expected>, got <value>", "<path>:<line>: <key>: unknown key",
// "<path>:<line>:<column>: <TOML syntax error>" or "<VARIABLE>: <key>: ...". Any thread.
Result<LoadedConfig> load_config(const std::filesystem::path& path,
                                 const Environment& environment = process_environment());

// As load_config, on TOML text; `source_name` stands for the file in messages.
Result<LoadedConfig> parse_config(std::string_view toml_text, std::string_view source_name,
                                  const Environment& environment);

// The effective configuration as JSON, sections as nested objects, with the values of secret
// keys replaced by kRedacted.
boost::json::object effective_config_json(const Config& config);

inline constexpr std::string_view kRedacted = "<redacted>";

// One configuration key, for documentation and tooling.
struct ConfigKeyInfo {
  std::string path;          // "storage.fsync"
  std::string env_variable;  // "WASMQ_STORAGE_FSYNC"
  std::string expected;      // "\"always\" or \"interval\""
  bool secret = false;       // redacted by effective_config_json
};

// Every key load_config accepts (besides etl.pipelines), in documentation order.
std::vector<ConfigKeyInfo> config_keys();

// A listen address split into host and port.
struct ListenAddress {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
};

// Parses "host:port" or "[ipv6]:port"; kInvalidArgument when it is not one.
Result<ListenAddress> parse_listen_address(std::string_view text);

// Whether `host` names only this machine: "localhost", 127.0.0.0/8 or ::1.
bool is_loopback_host(std::string_view host);

}  // namespace wasmq::cli
