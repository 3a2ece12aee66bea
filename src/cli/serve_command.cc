#include "cli/serve_command.h"

#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

#include "broker/broker.h"
#include "cli/config.h"
#include "common/log.h"
#include "http/data_api.h"
#include "http/server.h"
#include "storage/topic_store.h"

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
  if (!config.etl.pipelines.empty()) {
    logger.warn("{} pipeline(s) in the configuration are not run: this build stores messages "
                "without ETL",
                config.etl.pipelines.size());
  }

  std::vector<std::string> repairs;
  auto store = storage::TopicStore::open(store_options(config), &repairs);
  for (const auto& repair : repairs) log::get("storage").warn("recovery: {}", repair);
  if (!store.is_ok()) {
    logger.error("cannot open storage: {}", store.status().message());
    std::cerr << "error: cannot open storage: " << store.status().message() << "\n";
    return 1;
  }
  broker::Broker broker(**store, broker::BrokerOptions{config.broker.auto_create_topics});

  auto listen = parse_listen_address(config.broker.listen);
  if (!listen.is_ok()) {
    std::cerr << "error: broker.listen: " << listen.status().message() << "\n";
    return 1;
  }
  http::Router router;
  if (Status s = http::add_data_api(router, broker); !s.is_ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  http::ServerOptions server_options;
  server_options.host = listen->host;
  server_options.port = listen->port;
  server_options.io_threads = config.broker.io_threads;
  server_options.max_body_bytes = config.http.max_body_bytes;
  server_options.name = "data-api";
  http::Server data_api(server_options, std::move(router));
  if (Status s = data_api.start(); !s.is_ok()) {
    logger.error("{}", s.message());
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  const std::string host = listen->host.find(':') != std::string::npos ? "[" + listen->host + "]" : listen->host;
  // The ready line (stdout): scripts and tests wait for it.
  std::cout << "wasmq: data API on http://" << host << ":" << data_api.port() << " (data in "
            << std::filesystem::absolute(config.broker.data_dir).lexically_normal().string() << ")"
            << std::endl;
  logger.info("serving; stop with SIGTERM or Ctrl-C");

  int received = 0;
  sigwait(&signals, &received);
  logger.info("{}: stopping", received == SIGINT ? "SIGINT" : "SIGTERM");
  data_api.stop(std::chrono::seconds(10));
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
