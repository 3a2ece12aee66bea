#include "cli/serve_command.h"

#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/stream_pipelines.h"
#include "cli/config.h"
#include "common/log.h"
#include "common/mutex.h"
#include "etl/module_signature.h"
#include "etl/orchestrator.h"
#include "http/access.h"
#include "http/admin_api.h"
#include "http/audit_log.h"
#include "http/data_api.h"
#include "http/groups_api.h"
#include "http/pool_api.h"
#include "http/server.h"
#include "http/status_api.h"
#include "http/tls.h"
#include "kafka/server.h"
#include "kafka/service.h"
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
  o.max_topics = config.broker.max_topics;
  o.max_open_files = config.storage.max_open_files;
  return o;
}

// What [security] and the module rules of [etl] ask for, loaded and checked before anything
// listens: a file that cannot be read or does not hold what it should stops start-up.
struct Security {
  std::shared_ptr<const http::AccessControl> access;  // null: no tokens
  std::shared_ptr<http::AuditLog> audit;              // null: no audit log
  std::shared_ptr<boost::asio::ssl::context> tls;     // null: plain HTTP
  http::AdminApiOptions admin;                        // module sources and signers
};

Result<Security> load_security(const Config& config, spdlog::logger& logger) {
  Security security;
  const SecuritySection& s = config.security;
  if (!s.tokens_file.empty()) {
    auto tokens = http::TokenStore::load(s.tokens_file);
    if (!tokens.is_ok()) return tokens.status();
    std::error_code ec;
    auto permissions = std::filesystem::status(s.tokens_file, ec).permissions();
    using std::filesystem::perms;
    if (!ec && (permissions & (perms::group_all | perms::others_all)) != perms::none) {
      logger.warn("security.tokens_file: {} can be read by other users (chmod 600 it)",
                  s.tokens_file);
    }
    logger.info("access control: {} token(s) from {}", tokens->size(), s.tokens_file);
    security.access = std::make_shared<const http::AccessControl>(std::move(*tokens));
  }
  if (!s.audit_log.empty()) {
    http::AuditLogOptions audit_options;
    audit_options.max_bytes = s.audit_log_max_bytes;
    auto audit = http::AuditLog::open(s.audit_log, audit_options);
    if (!audit.is_ok()) return audit.status();
    security.audit = std::move(*audit);
  }
  if (!s.tls_cert.empty()) {
    auto tls = http::server_tls_context(s.tls_cert, s.tls_key);
    if (!tls.is_ok()) return tls.status();
    security.tls = std::move(*tls);
  }
  if (config.etl.enable_module_signature_verification) {
    std::vector<std::filesystem::path> files(s.module_signing_keys.begin(),
                                             s.module_signing_keys.end());
    auto signers = etl::ModuleSigners::load(files);
    if (!signers.is_ok()) return signers.status();
    logger.info("module uploads must be signed by one of {} key(s)", signers->size());
    security.admin.signers = std::make_shared<const etl::ModuleSigners>(std::move(*signers));
  }
  security.admin.allowed_module_sources = config.etl.allowed_module_sources;
  return security;
}

// SASL/PLAIN for the Kafka listener against the same tokens as HTTP (null: no tokens file).
// Username = the token's name, password = the token; each Kafka need maps to the HTTP right of
// the same name.
std::shared_ptr<const kafka::Security> kafka_security(
    std::shared_ptr<const http::AccessControl> access) {
  if (!access) return nullptr;
  auto security = std::make_shared<kafka::Security>();
  security->authenticate = [access](std::string_view username,
                                    std::string_view password) -> std::optional<kafka::Caller> {
    const http::Principal* p = access->tokens().find(password);
    if (!p || p->name != username) return std::nullopt;
    return kafka::Caller{p->name, std::string(http::role_name(p->role))};
  };
  security->allows = [](const kafka::Caller& caller, kafka::Need need) {
    auto role = http::parse_role(caller.role);
    if (!role) return false;
    switch (need) {
      case kafka::Need::kProduce: return http::role_has(*role, http::Right::kProduce);
      case kafka::Need::kConsume: return http::role_has(*role, http::Right::kConsume);
      case kafka::Need::kDescribeTopics: return http::role_has(*role, http::Right::kDescribeTopics);
      case kafka::Need::kCreateTopics: return http::role_has(*role, http::Right::kCreateTopics);
      case kafka::Need::kDeleteTopics: return http::role_has(*role, http::Right::kDeleteTopics);
    }
    return false;
  };
  return security;
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
  o.defaults.log_calls = config.etl.enable_debug_logging;
  o.defaults.log_execution_times = config.etl.log_execution_times;
  o.defaults.cpu_warning_threshold_percent = config.etl.cpu_warning_threshold_percent;
  o.defaults.log_memory_usage = config.etl.log_memory_usage;
  o.defaults.memory_warning_threshold_percent = config.etl.memory_warning_threshold_percent;
  o.defaults.result_cache_max_bytes = config.etl.result_cache_max_bytes;
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
  o.compile_bounds.timeout = std::chrono::milliseconds(config.etl.module_compile_timeout_ms);
  o.compile_bounds.max_memory_bytes = config.etl.module_compile_max_memory_bytes;
  o.compile_bounds.executable = "/proc/self/exe";  // uploads are compiled in a child process
  return o;
}

// The value at a dotted path ("etl.instance_pool.max_pool_size") of the effective configuration.
const boost::json::value* at_path(const boost::json::object& root, std::string_view path) {
  const boost::json::object* object = &root;
  while (true) {
    size_t dot = path.find('.');
    const boost::json::value* v = object->if_contains(path.substr(0, dot));
    if (!v || dot == std::string_view::npos) return v;
    if (!v->is_object()) return nullptr;
    object = &v->get_object();
    path = path.substr(dot + 1);
  }
}

// What the admin API's status endpoints read, and the reload: the file's pipelines are applied
// at once (gracefully: batches in flight finish on the configuration they started with); every
// other key that changed is listed as needing a restart and left as it is.
// The Kafka listener's figures as the status API shows them.
std::vector<http::StatusContext::ListenerFigure> kafka_figures(const kafka::Figures& f) {
  auto one = [](std::string name, std::string type, std::string help, double value) {
    return http::StatusContext::ListenerFigure{std::move(name), std::move(type), std::move(help),
                                               "", {{"", value}}};
  };
  auto load = [](const std::atomic<uint64_t>& v) { return static_cast<double>(v.load(std::memory_order_relaxed)); };
  std::vector<http::StatusContext::ListenerFigure> out = {
      one("kafka_connections", "gauge", "Kafka connections open now.", load(f.connections_open)),
      one("kafka_connections_accepted_total", "counter", "Kafka connections accepted.",
          load(f.connections_accepted)),
      one("kafka_request_errors_total", "counter",
          "Kafka frames that closed their connection (malformed, too large, not served).",
          load(f.request_errors)),
      one("kafka_bytes_in_total", "counter", "Bytes of Kafka requests read.", load(f.bytes_in)),
      one("kafka_bytes_out_total", "counter", "Bytes of Kafka responses written.", load(f.bytes_out)),
  };
  http::StatusContext::ListenerFigure requests{"kafka_requests_total", "counter",
                                               "Kafka requests answered, per API.", "api", {}};
  http::StatusContext::ListenerFigure seconds{
      "kafka_request_seconds_total", "counter",
      "Seconds from a Kafka request read to its response written (long polls included), per API.",
      "api", {}};
  for (size_t key = 0; key < kafka::Figures::kApiKeys; ++key) {
    const double n = load(f.requests_by_api[key]);
    if (n == 0) continue;
    const std::string api(kafka::api_name(static_cast<int16_t>(key)));
    requests.samples.emplace_back(api, n);
    seconds.samples.emplace_back(api, load(f.nanoseconds_by_api[key]) / 1e9);
  }
  out.push_back(std::move(requests));
  out.push_back(std::move(seconds));
  return out;
}

http::StatusContext status_context(const std::string& config_path, const Config& config,
                                   etl::Orchestrator& etl, broker::Broker& broker,
                                   const broker::StreamPipelines* streams,
                                   const broker::GroupCoordinator* groups,
                                   std::shared_ptr<std::atomic<const kafka::Server*>> kafka) {
  struct Live {
    explicit Live(Config c) : config(std::move(c)) {}
    Mutex mutex;
    Config config GUARDED_BY(mutex);  // the configuration in force
  };
  auto live = std::make_shared<Live>(config);
  http::StatusContext c;
  c.kafka_figures = [kafka] {
    const kafka::Server* server = kafka->load();
    return server ? kafka_figures(server->figures()) : std::vector<http::StatusContext::ListenerFigure>{};
  };
  c.etl = &etl;
  c.broker = &broker;
  c.streams = streams;
  c.groups = groups;
  c.version = WASMQ_VERSION;
  c.effective_config = [live] {
    MutexLock lock(live->mutex);
    return effective_config_json(live->config);
  };
  c.reload = [live, config_path, &etl]() {
    http::ReloadOutcome out;
    auto loaded = load_config(config_path);
    if (!loaded.is_ok()) {
      out.status = loaded.status().with_context("reload refused, nothing changed");
      return out;
    }
    MutexLock lock(live->mutex);
    const Config& next = loaded->config;
    if (next.etl.pipelines != live->config.etl.pipelines) {
      auto changed = etl.replace_file_pipelines(next.etl.pipelines);
      if (!changed.is_ok()) {
        out.status = changed.status().with_context("reload refused, nothing changed");
        return out;
      }
      out.applied.push_back("etl.pipelines: " + std::to_string(*changed) + " pipeline(s) changed");
      live->config.etl.pipelines = next.etl.pipelines;
      live->config.etl.pipeline_lines = next.etl.pipeline_lines;
    }
    const boost::json::object before = effective_config_json(live->config);
    const boost::json::object after = effective_config_json(next);
    for (const ConfigKeyInfo& key : config_keys()) {
      const boost::json::value* a = at_path(before, key.path);
      const boost::json::value* b = at_path(after, key.path);
      if ((a == nullptr) != (b == nullptr) || (a && *a != *b))
        out.restart_required.push_back(key.path);
    }
    log::get("broker").info("configuration reloaded from {}: {} applied, {} need a restart",
                            config_path, out.applied.size(), out.restart_required.size());
    return out;
  };
  return c;
}

int serve(const std::string& config_path) {
  // Signals are taken by sigwait on this thread: block them before any thread starts, so that
  // every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // reloads the configuration (systemctl reload)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = load_config(config_path);
  if (!loaded.is_ok()) {
    std::cerr << "error: " << loaded.status().message();
    // A relative path (the default, config/broker.toml) is read from the working directory,
    // which for an installed binary is seldom a checkout: say where it looked and what to do.
    if (std::error_code ec; std::filesystem::path(config_path).is_relative() &&
                            !std::filesystem::exists(config_path, ec)) {
      std::cerr << " (looked for " << std::filesystem::absolute(config_path, ec).string()
                << "; name the configuration file with --config FILE)";
    }
    std::cerr << "\n";
    return 1;
  }
  const Config& config = loaded->config;
  if (Status s = configure_logging(config.logging); !s.is_ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  // enable_debug_logging: the module call lines are debug lines of the "etl" target.
  if (config.etl.enable_debug_logging && log::level_for("etl") > spdlog::level::debug) {
    log::get("etl").set_level(spdlog::level::debug);
  }
  auto& logger = log::get("broker");
  for (const auto& warning : loaded->warnings) logger.warn("{}", warning);
  // Partitions and connections each hold descriptors: take all the system allows.
  logger.info("open file limit: {} descriptors", http::raise_open_file_limit());

  auto security = load_security(config, logger);
  if (!security.is_ok()) {
    logger.error("{}", security.status().message());
    std::cerr << "error: " << security.status().message() << "\n";
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
  (*etl)->workers().set_admission_limits(
      {config.etl.max_queued_batches, config.etl.max_queued_bytes});
  {
    // One line that says what this start found: an operator reads it after every restart.
    const auto topics = (*store)->list();
    uint64_t partitions = 0;
    for (const auto& topic : topics) partitions += topic->partition_count();
    size_t from_file = 0, streams = 0, enabled = 0;
    const auto pipelines = (*etl)->pipelines();
    for (const auto& entry : pipelines) {
      if (entry.origin == etl::PipelineOrigin::kFile) ++from_file;
      if (entry.spec.mode == etl::PipelineMode::kStream) ++streams;
      if (entry.spec.enabled) ++enabled;
    }
    logger.info(
        "wasmq {} starting: configuration {}, data in {}: {} topic(s) with {} partition(s), {} "
        "module(s), {} pipeline(s) ({} enabled, {} stream, {} from the configuration file)",
        WASMQ_VERSION, std::filesystem::absolute(config_path).lexically_normal().string(),
        std::filesystem::absolute(config.broker.data_dir).lexically_normal().string(),
        topics.size(), partitions, (*etl)->modules().list().size(), pipelines.size(), enabled,
        streams, from_file);
  }
  broker::Broker broker(**store, broker::BrokerOptions{config.broker.auto_create_topics},
                        etl->get());
  auto streams = std::make_unique<broker::StreamPipelines>(broker);

  auto data_listen = parse_listen_address(config.broker.listen);
  if (!data_listen.is_ok()) return fail("broker.listen: " + data_listen.status().message());
  auto admin_listen = parse_listen_address(config.admin.listen);
  if (!admin_listen.is_ok()) return fail("admin.listen: " + admin_listen.status().message());

  // Consumer groups: the Kafka API's, shared with the HTTP API's `group=` and /api/v1/groups.
  broker::GroupOptions group_options;
  group_options.dir = std::filesystem::path(config.broker.data_dir) / "groups";
  auto opened_groups = broker::GroupCoordinator::open(group_options);
  if (!opened_groups.is_ok()) {
    return fail("cannot open consumer groups: " + opened_groups.status().message());
  }
  std::unique_ptr<broker::GroupCoordinator> groups = std::move(*opened_groups);

  http::Router data_router;
  http::DataApiOptions data_options;
  data_options.audit = security->audit;
  data_options.groups = groups.get();
  if (Status s = http::add_data_api(data_router, broker, data_options); !s.is_ok())
    return fail(s.message());
  http::Router admin_router;
  // The Kafka listener, once started, for the status API's figures (null while it is off).
  auto kafka_server = std::make_shared<std::atomic<const kafka::Server*>>(nullptr);
  if (Status s = http::add_admin_api(admin_router, **etl, streams.get(), security->admin);
      !s.is_ok())
    return fail(s.message());
  http::StatusContext status =
      status_context(config_path, config, **etl, broker, streams.get(), groups.get(), kafka_server);
  // SIGHUP does what POST /api/v1/config/reload does.
  const std::function<http::ReloadOutcome()> reload = status.reload;
  if (Status s = http::add_status_api(admin_router, std::move(status)); !s.is_ok()) {
    return fail(s.message());
  }
  if (Status s = http::add_pool_api(admin_router, **etl); !s.is_ok()) return fail(s.message());
  if (Status s = http::add_groups_api(admin_router, *groups, **store); !s.is_ok())
    return fail(s.message());

  auto server_options = [&](const ListenAddress& listen, unsigned io_threads, const char* name,
                            uint32_t max_connections) {
    http::ServerOptions o;
    o.max_connections = max_connections;
    o.host = listen.host;
    o.port = listen.port;
    o.io_threads = io_threads;
    o.max_body_bytes = config.http.max_body_bytes;
    o.name = name;
    o.access = security->access;
    o.audit = security->audit;
    o.tls = security->tls;
    return o;
  };
  // The admin API is light: one I/O thread. Uploads and dry runs run on the ETL workers.
  http::Server admin_api(
      server_options(*admin_listen, 1, "admin-api", config.admin.max_connections),
      std::move(admin_router));
  if (Status s = admin_api.start(); !s.is_ok()) return fail(s.message());
  http::Server data_api(server_options(*data_listen, config.broker.io_threads, "data-api",
                                       config.broker.max_connections),
                        std::move(data_router));
  if (Status s = data_api.start(); !s.is_ok()) {
    admin_api.stop(std::chrono::seconds(0));
    return fail(s.message());
  }
  // The Kafka listener (kafka.listen; "" leaves it off), started before the ready lines.
  std::unique_ptr<kafka::Service> kafka_service;
  std::unique_ptr<kafka::Server> kafka_api;
  std::string kafka_line;
  if (!config.kafka.listen.empty()) {
    auto listen = parse_listen_address(config.kafka.listen);
    if (!listen.is_ok()) return fail("kafka.listen: " + listen.status().message());
    kafka::ServerOptions o;
    o.host = listen->host;
    o.port = listen->port;
    o.io_threads = config.broker.io_threads == 0 ? 1 : config.broker.io_threads;
    o.max_request_bytes = config.kafka.max_request_bytes;
    o.tls = security->tls;
    kafka::ServiceOptions so;
    so.auto_create_topics = config.broker.auto_create_topics;
    so.security = kafka_security(security->access);
    if (security->audit) {
      so.audit = [audit = security->audit](const kafka::AuditEvent& e) {
        std::optional<http::Principal> who;
        if (e.caller) who = http::Principal{e.caller->name, *http::parse_role(e.caller->role)};
        const char* result = e.result == kafka::AuditEvent::Result::kOk        ? "ok"
                             : e.result == kafka::AuditEvent::Result::kRefused ? "refused"
                                                                               : "failed";
        audit->record_kafka(who ? &*who : nullptr, e.remote, e.api, e.resource, result, e.error);
      };
    }
    kafka_service = std::make_unique<kafka::Service>(broker, so, groups.get());
    const size_t producer_batches = kafka_service->recover_producers();
    log::get("kafka").info("idempotent producers: {} batch(es) found at the ends of the logs",
                           producer_batches);
    kafka_api = std::make_unique<kafka::Server>(o, *kafka_service);
    auto advertise = [&](uint16_t port) {
      ListenAddress advertised = *listen;
      if (!config.kafka.advertised_listener.empty()) {
        advertised = *parse_listen_address(config.kafka.advertised_listener);
      } else {
        advertised.port = port;
        // A wildcard is no address to connect to: clients on this machine use loopback.
        if (advertised.host == "0.0.0.0" || advertised.host == "::") advertised.host = "127.0.0.1";
      }
      kafka_service->set_advertised(advertised.host, advertised.port);
    };
    if (Status s = kafka_api->start(advertise); !s.is_ok()) {
      data_api.stop(std::chrono::seconds(0));
      admin_api.stop(std::chrono::seconds(0));
      return fail(s.message());
    }
    kafka_server->store(kafka_api.get());
    // The security.protocol clients set: what this listener requires.
    const char* protocol = security->access ? (security->tls ? "SASL_SSL" : "SASL_PLAINTEXT")
                                            : (security->tls ? "SSL" : "PLAINTEXT");
    kafka_line = "wasmq: Kafka API on " + listen->host + ":" + std::to_string(kafka_api->port()) +
                 " (" + protocol + ")";
  }
  auto url = [&](const ListenAddress& listen, uint16_t port) {
    const std::string host =
        listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
    return (security->tls ? "https://" : "http://") + host + ":" + std::to_string(port);
  };
  // The ready lines (stdout): scripts and tests wait for the data API's, which comes last.
  std::cout << "wasmq: admin API on " << url(*admin_listen, admin_api.port()) << std::endl;
  if (!kafka_line.empty()) std::cout << kafka_line << std::endl;
  std::cout << "wasmq: data API on " << url(*data_listen, data_api.port()) << " (data in "
            << std::filesystem::absolute(config.broker.data_dir).lexically_normal().string() << ")"
            << std::endl;
  logger.info("serving; stop with SIGTERM or Ctrl-C, reload the configuration with SIGHUP");

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    const http::ReloadOutcome outcome = reload();
    if (!outcome.status.is_ok()) {
      logger.error("SIGHUP: {}", outcome.status.message());
      continue;
    }
    for (const auto& applied : outcome.applied) logger.info("SIGHUP: applied {}", applied);
    for (const auto& key : outcome.restart_required) {
      logger.warn("SIGHUP: {} changed, but takes effect only after a restart", key);
    }
  }
  logger.info("{}: stopping", received == SIGINT ? "SIGINT" : "SIGTERM");
  if (kafka_api) kafka_api->stop(std::chrono::seconds(10));
  kafka_server->store(nullptr);
  data_api.stop(std::chrono::seconds(10));
  admin_api.stop(std::chrono::seconds(10));
  // Stream pipelines commit their batch in flight; the ETL workers finish the batches they hold
  // (storing their results) before storage closes.
  streams.reset();
  etl->reset();
  broker.drain_appends();  // what the workers queued last
  store->reset();          // flushes every partition
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
