#include "cli/serve_command.h"

#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

#include "broker/broker.h"
#include "broker/stream_pipelines.h"
#include "cli/config.h"
#include "common/log.h"
#include "etl/orchestrator.h"
#include "http/admin_api.h"
#include "http/data_api.h"
#include "http/pool_api.h"
#include "http/server.h"
#include "storage/topic_store.h"
#include "wasm/engine.h"

namespace wasmq::cli {
namespace {

Status configure_logging(const LoggingSection& logging) {
  std::vector<spdlog::sink_ptr> sinks;
  if (logging.file.empty()) {
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  } else {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(logging.file));
    } catch (const spdlog::spdlog_ex& e) {
      return Status(StatusCode::kIo, "logging.file: cannot open " + logging.file + ": " + e.what());
    }
  }
  log::configure(logging.level, logging.targets, std::move(sinks),
                 logging.format == LogFormat::kJson ? log::Format::kJson : log::Format::kText);
  return Status::ok();
}

storage::StoreOptions store_options(const Config& config) {
  storage::StoreOptions o;
  o.data_dir = config.broker.data_dir;
  o.default_partitions = config.broker.default_partitions;
  o.fsync_interval_ms = config.storage.fsync_interval_ms;
  o.log.segment_bytes = config.storage.segment_bytes;
  o.log.index_interval_bytes = config.storage.index_interval_bytes;
  o.log.retention_ms = config.storage.retention_ms;
  o.log.retention_bytes = config.storage.retention_bytes;
  o.log.fsync = config.storage.fsync;
  return o;
}

// Settings whose feature this build does not have yet: starting without them would leave the
// operator believing they protect something. Each is refused with what to do instead.
Status refuse_unbuilt_features(const Config& config) {
  auto refuse = [](std::string_view key, std::string_view what) {
    return invalid_argument(std::string(key) + ": " + std::string(what) +
                            " is not available in this build; remove the setting to start");
  };
  if (!config.security.tokens_file.empty()) return refuse("security.tokens_file", "access control");
  if (!config.security.tls_cert.empty()) return refuse("security.tls_cert", "TLS");
  if (!config.security.audit_log.empty()) return refuse("security.audit_log", "the audit log");
  if (config.etl.enable_module_signature_verification) {
    return refuse("etl.enable_module_signature_verification", "module signature verification");
  }
  if (config.etl.allowed_module_sources != std::vector<std::string>{"*"}) {
    return refuse("etl.allowed_module_sources", "restricting module sources");
  }
  return Status::ok();
}

etl::OrchestratorOptions etl_options(const Config& config) {
  etl::OrchestratorOptions o;
  o.enabled = config.etl.enabled;
  o.defaults.memory_limit_bytes = config.etl.memory_limit_bytes;
  o.defaults.execution_timeout_ms = config.etl.execution_timeout_ms;
  o.defaults.max_output_bytes = config.etl.max_output_bytes;
  o.defaults.max_batch_size = config.etl.max_batch_size;
  o.defaults.max_concurrent_executions = config.etl.max_concurrent_executions;
  o.defaults.enable_error_topic = config.etl.enable_error_topic;
  o.defaults.error_topic_prefix = config.etl.error_topic_prefix;
  o.defaults.max_error_message_size = config.etl.max_error_message_size;
  o.workers = config.etl.workers;
  o.modules_path = config.etl.modules_path;
  o.pipelines_path = config.etl_management.pipeline_metadata_path;
  o.max_pipelines = config.etl_management.max_pipelines_per_broker;
  const InstancePoolSection& pool = config.etl.instance_pool;
  o.pools.pool.defaults.max_pool_size = pool.max_pool_size;
  o.pools.pool.defaults.warmup_instances = pool.warmup_instances;
  o.pools.pool.defaults.creation_rate_limit = pool.creation_rate_limit;
  o.pools.pool.defaults.idle_timeout = std::chrono::seconds(pool.idle_timeout_seconds);
  o.pools.pool.max_idle_instances = config.etl.max_idle_instances;
  o.pools.pool.max_memory_bytes = pool.max_memory_bytes;
  o.pools.pool.lru_eviction = pool.enable_lru_eviction;
  o.pools.background_cleanup = pool.enable_background_cleanup;
  o.pools.gc_interval = std::chrono::milliseconds(config.etl.gc_interval_ms);
  o.module_cache_size = config.etl.module_cache_size;
  o.module_cache_ttl = std::chrono::seconds(config.etl.module_cache_ttl_seconds);
  return o;
}

int serve(const std::string& config_path) {
  // Signals are taken by sigwait on this thread: block them before any thread starts, so that
  // every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = load_config(config_path);
  if (!loaded.is_ok()) {
    std::cerr << "error: " << loaded.status().message() << "\n";
    return 1;
  }
  const Config& config = loaded->config;
  if (Status s = configure_logging(config.logging); !s.is_ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  auto& logger = log::get("broker");
  for (const auto& warning : loaded->warnings) logger.warn("{}", warning);

  if (Status s = refuse_unbuilt_features(config); !s.is_ok()) {
    logger.error("{}", s.message());
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  std::vector<std::string> repairs;
  auto store = storage::TopicStore::open(store_options(config), &repairs);
  for (const auto& repair : repairs) log::get("storage").warn("recovery: {}", repair);
  if (!store.is_ok()) {
    logger.error("cannot open storage: {}", store.status().message());
    std::cerr << "error: cannot open storage: " << store.status().message() << "\n";
    return 1;
  }
  auto fail = [&](const std::string& message) {
    logger.error("{}", message);
    std::cerr << "error: " << message << "\n";
    return 1;
  };

  if (Status s = wasm::initialize_engine(); !s.is_ok()) return fail(s.message());
  std::vector<std::string> etl_warnings;
  auto etl = etl::Orchestrator::open(etl_options(config), config.etl.pipelines, &etl_warnings);
  for (const auto& warning : etl_warnings) log::get("etl").warn("{}", warning);
  if (!etl.is_ok()) return fail("cannot start ETL: " + etl.status().message());
  broker::Broker broker(**store, broker::BrokerOptions{config.broker.auto_create_topics},
                        etl->get());
  auto streams = std::make_unique<broker::StreamPipelines>(broker);

  auto data_listen = parse_listen_address(config.broker.listen);
  if (!data_listen.is_ok()) return fail("broker.listen: " + data_listen.status().message());
  auto admin_listen = parse_listen_address(config.admin.listen);
  if (!admin_listen.is_ok()) return fail("admin.listen: " + admin_listen.status().message());

  http::Router data_router;
  if (Status s = http::add_data_api(data_router, broker); !s.is_ok()) return fail(s.message());
  http::Router admin_router;
  if (Status s = http::add_admin_api(admin_router, **etl, streams.get()); !s.is_ok())
    return fail(s.message());
  if (Status s = http::add_pool_api(admin_router, **etl); !s.is_ok()) return fail(s.message());

  auto server_options = [&](const ListenAddress& listen, unsigned io_threads, const char* name) {
    http::ServerOptions o;
    o.host = listen.host;
    o.port = listen.port;
    o.io_threads = io_threads;
    o.max_body_bytes = config.http.max_body_bytes;
    o.name = name;
    return o;
  };
  // The admin API is light: one I/O thread. Uploads and dry runs run on the ETL workers.
  http::Server admin_api(server_options(*admin_listen, 1, "admin-api"), std::move(admin_router));
  if (Status s = admin_api.start(); !s.is_ok()) return fail(s.message());
  http::Server data_api(server_options(*data_listen, config.broker.io_threads, "data-api"),
                        std::move(data_router));
  if (Status s = data_api.start(); !s.is_ok()) {
    admin_api.stop(std::chrono::seconds(0));
    return fail(s.message());
  }
  auto url = [](const ListenAddress& listen, uint16_t port) {
    const std::string host =
        listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
    return "http://" + host + ":" + std::to_string(port);
  };
  // The ready lines (stdout): scripts and tests wait for the data API's, which comes last.
  std::cout << "wasmq: admin API on " << url(*admin_listen, admin_api.port()) << std::endl;
  std::cout << "wasmq: data API on " << url(*data_listen, data_api.port()) << " (data in "
            << std::filesystem::absolute(config.broker.data_dir).lexically_normal().string() << ")"
            << std::endl;
  logger.info("serving; stop with SIGTERM or Ctrl-C");

  int received = 0;
  sigwait(&signals, &received);
  logger.info("{}: stopping", received == SIGINT ? "SIGINT" : "SIGTERM");
  data_api.stop(std::chrono::seconds(10));
  admin_api.stop(std::chrono::seconds(10));
  // Stream pipelines commit their batch in flight; the ETL workers finish the batches they hold
  // (storing their results) before storage closes.
  streams.reset();
  etl->reset();
  store->reset();  // flushes every partition
  logger.info("stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto config = std::make_shared<std::string>("config/broker.toml");
  CLI::App* cmd = app.add_subcommand("serve", "run the broker");
  cmd->add_option("--config", *config, "the configuration file")->capture_default_str();
  cmd->callback([config, &exit_code] { exit_code = serve(*config); });
}

}  // namespace wasmq::cli
