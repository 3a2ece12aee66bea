// The admin API's operating endpoints (http-api.md, "Broker" and the ETL figures): status,
// cluster health, features, the effective configuration, configuration reload, JSON metrics,
// Prometheus text at /metrics, and per pipeline metrics and health, ETL status, capabilities,
// health and filter performance. Every figure is read from what the broker and the ETL runtime
// measured; none is a constant.
//
// Threads: handlers run on the admin server's I/O threads and only read atomics and snapshots;
// a reload is applied by the callback the caller provides.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/stream_pipelines.h"
#include "common/status.h"
#include "etl/orchestrator.h"
#include "http/router.h"

namespace wasmq::http {

// What a configuration reload did.
struct ReloadOutcome {
  Status status;                              // not ok: nothing was applied
  std::vector<std::string> applied;           // e.g. "etl.pipelines: 2 changed"
  std::vector<std::string> restart_required;  // keys that changed but need a restart
};

struct StatusContext {
  etl::Orchestrator* etl = nullptr;
  broker::Broker* broker = nullptr;
  const broker::StreamPipelines* streams = nullptr;
  std::string version;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // The effective configuration, secrets redacted (GET /api/v1/config); refreshed by reloads.
  std::function<boost::json::object()> effective_config;
  // Re-reads the configuration file and applies what can be applied live.
  std::function<ReloadOutcome()> reload;

  // Figures of a listener this room does not know (the Kafka protocol's), read when asked:
  // null, or returning nothing, when it is off. In /api/v1/metrics under "kafka" (a figure with
  // one unlabelled sample as a number, else an object by label value) and in /metrics as
  // wasmq_<name>.
  struct ListenerFigure {
    std::string name;  // e.g. "kafka_requests_total"
    std::string type;  // "counter" or "gauge"
    std::string help;
    std::string label;  // the label's name ("api"), or "" for one unlabelled sample
    std::vector<std::pair<std::string, double>> samples;  // label value (or ""), value
  };
  std::function<std::vector<ListenerFigure>()> kafka_figures;
  // Consumer groups, for their lag ("groups" in /api/v1/metrics, wasmq_group_* in /metrics);
  // null: none.
  const broker::GroupCoordinator* groups = nullptr;
};

// Registers the operating endpoints on `router`; everything in `context` must outlive it.
Status add_status_api(Router& router, StatusContext context);

}  // namespace wasmq::http
