// Internal to the status API (status_api.cc, etl_status_api.cc, prometheus.cc): the StatusApi
// class whose handlers those files define, and the helpers they share. Nothing else includes it.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "etl/figures.h"
#include "etl/orchestrator.h"
#include "etl/pipeline.h"
#include "http/request.h"
#include "http/status_api.h"
#include "wasm/instance_pool.h"

namespace wasmq::http::status_api_internal {

namespace json = boost::json;
using boost::asio::awaitable;

inline constexpr std::array<etl::FilterType, 6> kFilterTypes = {
    etl::FilterType::kExact,  etl::FilterType::kWildcard, etl::FilterType::kRegex,
    etl::FilterType::kPrefix, etl::FilterType::kSuffix,   etl::FilterType::kContains};

inline uint64_t load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
inline uint64_t load(const etl::Counter& c) { return c.load(); }

inline double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

// {"count", "avg_ms", "p50_ms", "p99_ms"} of `h`.
json::object latency_json(const etl::LatencyHistogram& h);

// The handlers of the operating endpoints and what they share; add_status_api routes to them.
// Broker status, configuration and JSON metrics: status_api.cc; ETL status, health, capabilities
// and per pipeline figures: etl_status_api.cc; Prometheus text: prometheus.cc.
class StatusApi {
 public:
  explicit StatusApi(StatusContext context) : c_(std::move(context)) {}

  double uptime_seconds() const;
  size_t active_pipelines() const;

  // Which modules of an enabled pipeline's stage are healthy (deployed, breaker closed, error
  // rate at most 5 %), degraded (errors above 5 %), or failed (not deployed, breaker open).
  struct ModuleHealth {
    size_t healthy = 0, degraded = 0, failed = 0;
  };
  ModuleHealth stage_health(const etl::PipelineSpec& spec, const etl::StageSpec& stage,
                            const etl::PipelineFigures* figures) const;

  // --- broker ---
  json::object storage_status() const;
  awaitable<Response> status(Request&);
  awaitable<Response> cluster_health(Request&);
  awaitable<Response> features(Request&);
  awaitable<Response> config(Request&);
  awaitable<Response> reload(Request& req);

  // --- ETL ---
  awaitable<Response> etl_status(Request&);
  awaitable<Response> capabilities(Request&);
  awaitable<Response> etl_health(Request&);
  std::string pipeline_status_word(const etl::PipelineSpec& spec) const;
  wasm::PoolModuleStats pool_of(const etl::PipelineSpec& spec) const;
  std::optional<etl::PipelineEntry> find(Request& req, Response* missing);
  awaitable<Response> pipeline_metrics(Request& req);
  awaitable<Response> pipeline_health(Request& req);
  awaitable<Response> filters_performance(Request&);

  // --- metrics ---
  awaitable<Response> metrics_json(Request&);
  awaitable<Response> metrics_prometheus(Request&);

 private:
  StatusContext c_;
};

}  // namespace wasmq::http::status_api_internal
