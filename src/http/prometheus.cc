#include "http/prometheus.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <string>
#include <utility>

#include "common/mutex.h"
#include "http/json_response.h"
#include "http/status_api_internal.h"

namespace wasmq::http {

void Prometheus::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(text_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Prometheus::sample(std::string_view name, std::string_view labels, double value) {
  fmt::format_to(std::back_inserter(text_), "{}{}{}{} {}\n", name, labels.empty() ? "" : "{",
                 labels, labels.empty() ? "" : "}", number(value));
}

void Prometheus::histogram(std::string_view name, std::string labels,
                           const etl::LatencyHistogram& h) {
  const auto& bounds = etl::LatencyHistogram::bucket_bounds_ms();
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  // Every fourth bound (a factor of ~2.4 apart) keeps the output readable; the counts stay
  // cumulative and exact at the bounds shown.
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += h.bucket_count(i);
    if (i % 4 != 3 && i + 1 != bounds.size()) continue;
    sample(std::string(name) + "_bucket",
           labels + sep + "le=\"" + number(bounds[i] / 1000.0) + "\"",
           static_cast<double>(cumulative));
  }
  sample(std::string(name) + "_bucket", labels + sep + "le=\"+Inf\"",
         static_cast<double>(h.count()));
  sample(std::string(name) + "_sum", labels, h.sum_ms() / 1000.0);
  sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

std::string Prometheus::label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Prometheus::take() { return std::move(text_); }

std::string Prometheus::number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{:.9g}", v);
}

namespace status_api_internal {

awaitable<Response> StatusApi::metrics_prometheus(Request&) {
  Prometheus p;
  const etl::Runtime& r = c_.etl->runtime();
  p.family("wasmq_uptime_seconds", "gauge", "Seconds since the broker started.");
  p.sample("wasmq_uptime_seconds", "", uptime_seconds());
  if (c_.kafka_figures) {
    for (const auto& f : c_.kafka_figures()) {
      const std::string name = "wasmq_" + f.name;
      p.family(name, f.type, f.help);
      for (const auto& [label, value] : f.samples) {
        p.sample(name, f.label.empty() ? "" : f.label + "=\"" + Prometheus::label(label) + "\"", value);
      }
    }
  }

  if (c_.groups) {
    const auto groups = c_.groups->list();
    p.family("wasmq_group_members", "gauge",
             "Members of a consumer group in Kafka's group protocol.");
    for (const auto& g : groups) {
      p.sample("wasmq_group_members", "group=\"" + Prometheus::label(g.group_id) + "\"",
               static_cast<double>(g.members.size()));
    }
    p.family("wasmq_group_lag", "gauge",
             "Messages a consumer group has left to read per committed partition: high watermark "
             "minus max(committed offset, log start).");
    for (const auto& g : groups) {
      for (const auto& l : broker::group_lag(c_.groups->committed(g.group_id), c_.broker->store())) {
        if (l.lag < 0) continue;  // the topic or partition is gone
        p.sample("wasmq_group_lag",
                 "group=\"" + Prometheus::label(g.group_id) + "\",topic=\"" +
                     Prometheus::label(l.topic) + "\",partition=\"" + std::to_string(l.partition) + "\"",
                 static_cast<double>(l.lag));
      }
    }
  }

  p.family("wasmq_topic_records", "gauge",
           "Records stored per topic partition (high watermark minus log start).");
  auto topics = c_.broker->store().list();
  for (const auto& t : topics) {
    for (uint32_t i = 0; i < t->partition_count(); ++i) {
      p.sample(
          "wasmq_topic_records",
          "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" + std::to_string(i) + "\"",
          static_cast<double>(t->partition(i).next_offset() - t->partition(i).start_offset()));
    }
  }
  p.family("wasmq_topic_size_bytes", "gauge", "Bytes on disk per topic partition.");
  for (const auto& t : topics) {
    for (uint32_t i = 0; i < t->partition_count(); ++i) {
      p.sample(
          "wasmq_topic_size_bytes",
          "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" + std::to_string(i) + "\"",
          static_cast<double>(t->partition(i).size_bytes()));
    }
  }

  p.family("wasmq_topic_corrupt_offsets", "gauge",
           "Offsets lost to corrupt batches (quarantined), per topic partition that has any.");
  for (const auto& t : topics) {
    for (uint32_t i = 0; i < t->partition_count(); ++i) {
      int64_t lost = 0;
      for (const auto& range : t->partition(i).corrupt_ranges()) {
        lost += range.end_offset - range.first_offset;
      }
      if (lost == 0) continue;
      p.sample(
          "wasmq_topic_corrupt_offsets",
          "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" + std::to_string(i) + "\"",
          static_cast<double>(lost));
    }
  }
  p.family("wasmq_storage_unloaded_topics", "gauge",
           "Topic directories that start-up could not load (see /api/v1/status).");
  p.sample("wasmq_storage_unloaded_topics", "",
           static_cast<double>(c_.broker->store().unloaded().size()));
  p.family("wasmq_storage_open_files", "gauge", "Segment files held open now.");
  p.sample("wasmq_storage_open_files", "",
           static_cast<double>(c_.broker->store().files().cached()));

  p.family("wasmq_etl_module_calls_total", "counter",
           "Guest entry points called (process_message or process_batch).");
  p.sample("wasmq_etl_module_calls_total", "", static_cast<double>(load(r.figures.module_calls)));
  p.family("wasmq_etl_call_duration_seconds", "histogram", "Duration of one guest call.");
  p.histogram("wasmq_etl_call_duration_seconds", "", r.figures.call_latency);
  p.family("wasmq_etl_running_executions", "gauge", "Module calls running now.");
  p.sample("wasmq_etl_running_executions", "", r.limits.running());
  p.family("wasmq_etl_queued_batches", "gauge", "Batches waiting for an ETL worker.");
  p.sample("wasmq_etl_queued_batches", "", static_cast<double>(c_.etl->workers().queued()));
  p.family("wasmq_etl_admitted_batches", "gauge",
           "Produce batches admitted for the ETL workers and not yet finished "
           "(etl.max_queued_batches).");
  p.sample("wasmq_etl_admitted_batches", "",
           static_cast<double>(c_.etl->workers().admitted_batches()));
  p.family("wasmq_etl_admitted_bytes", "gauge",
           "Bytes of those batches' messages (etl.max_queued_bytes).");
  p.sample("wasmq_etl_admitted_bytes", "", static_cast<double>(c_.etl->workers().admitted_bytes()));
  p.family("wasmq_etl_result_cache_lookups_total", "counter", "Module result cache lookups.");
  p.sample("wasmq_etl_result_cache_lookups_total", "result=\"hit\"",
           static_cast<double>(r.results.hits()));
  p.sample("wasmq_etl_result_cache_lookups_total", "result=\"miss\"",
           static_cast<double>(r.results.misses()));

  const etl::PoolReport pools = c_.etl->pools().report();
  p.family("wasmq_etl_memory_usage_bytes", "gauge",
           "Memory of the live WebAssembly instances, measured from their memories.");
  p.sample("wasmq_etl_memory_usage_bytes", "", static_cast<double>(pools.totals.memory_bytes));
  p.family("wasmq_etl_pool_instances", "gauge",
           "Live instances per module, idle or busy, over every worker.");
  for (const auto& m : pools.modules) {
    const std::string module = "module=\"" + Prometheus::label(m.module_id) + "\"";
    p.sample("wasmq_etl_pool_instances", module + ",state=\"idle\"",
             static_cast<double>(m.total.idle));
    p.sample("wasmq_etl_pool_instances", module + ",state=\"busy\"",
             static_cast<double>(m.total.busy));
  }
  p.family("wasmq_etl_pool_instances_created_total", "counter",
           "Instances created per module (warm-ups included).");
  for (const auto& m : pools.modules) {
    p.sample("wasmq_etl_pool_instances_created_total",
             "module=\"" + Prometheus::label(m.module_id) + "\"",
             static_cast<double>(m.total.created));
  }
  p.family("wasmq_etl_pool_reuses_total", "counter",
           "Calls served by an idle instance, per module.");
  for (const auto& m : pools.modules) {
    p.sample("wasmq_etl_pool_reuses_total", "module=\"" + Prometheus::label(m.module_id) + "\"",
             static_cast<double>(m.total.reused));
  }
  p.family("wasmq_etl_pool_evictions_total", "counter", "Instances evicted per module.");
  for (const auto& m : pools.modules) {
    p.sample("wasmq_etl_pool_evictions_total", "module=\"" + Prometheus::label(m.module_id) + "\"",
             static_cast<double>(m.total.evicted()));
  }

  const etl::FilterFigures& filters = r.figures.filters();
  p.family("wasmq_etl_filter_evaluations_total", "counter",
           "Topic filter evaluations (when a topic's plan is computed).");
  for (auto t : kFilterTypes) {
    p.sample("wasmq_etl_filter_evaluations_total",
             "type=\"" + std::string(etl::filter_type_name(t)) + "\"",
             static_cast<double>(load(filters.evaluations[static_cast<size_t>(t)])));
  }
  p.family("wasmq_etl_filter_evaluation_seconds_total", "counter",
           "Time spent evaluating topic filters.");
  for (auto t : kFilterTypes) {
    p.sample("wasmq_etl_filter_evaluation_seconds_total",
             "type=\"" + std::string(etl::filter_type_name(t)) + "\"",
             static_cast<double>(load(filters.total_ns[static_cast<size_t>(t)])) / 1e9);
  }
  p.family("wasmq_etl_plan_lookups_total", "counter",
           "Per-topic plan lookups by produce requests.");
  p.sample("wasmq_etl_plan_lookups_total", "result=\"hit\"",
           static_cast<double>(load(filters.plan_hits)));
  p.sample("wasmq_etl_plan_lookups_total", "result=\"miss\"",
           static_cast<double>(load(filters.plan_misses)));

  auto all = r.figures.all();
  struct Counter {
    const char* outcome;
    etl::Counter etl::PipelineFigures::*field;
  };
  const Counter pipeline_counters[] = {
      {"in", &etl::PipelineFigures::messages_in},
      {"out", &etl::PipelineFigures::messages_out},
      {"filtered", &etl::PipelineFigures::filtered},
      {"dead_lettered", &etl::PipelineFigures::dead_lettered},
      {"dead_letter_unwritable", &etl::PipelineFigures::dead_letters_unwritable},
      {"stopped", &etl::PipelineFigures::stopped}};
  p.family("wasmq_etl_pipeline_messages_total", "counter",
           "Messages through a pipeline, by outcome.");
  for (const auto& f : all) {
    for (const auto& c : pipeline_counters) {
      p.sample(
          "wasmq_etl_pipeline_messages_total",
          "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\",outcome=\"" + c.outcome + "\"",
          static_cast<double>(load((*f).*c.field)));
    }
  }
  p.family("wasmq_etl_pipeline_failures_total", "counter", "Module failures in a pipeline.");
  for (const auto& f : all) {
    p.sample("wasmq_etl_pipeline_failures_total",
             "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
             static_cast<double>(load(f->failed)));
  }
  p.family("wasmq_etl_pipeline_retries_total", "counter", "Retry calls in a pipeline.");
  for (const auto& f : all) {
    p.sample("wasmq_etl_pipeline_retries_total",
             "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
             static_cast<double>(load(f->retried)));
  }
  p.family("wasmq_etl_pipeline_merge_conflicts_total", "counter",
           "Parallel-stage merge conflicts.");
  for (const auto& f : all) {
    p.sample("wasmq_etl_pipeline_merge_conflicts_total",
             "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
             static_cast<double>(load(f->merge_conflicts)));
  }
  p.family("wasmq_etl_pipeline_latency_seconds", "histogram",
           "Time of a message through a pipeline.");
  for (const auto& f : all) {
    p.histogram("wasmq_etl_pipeline_latency_seconds",
                "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"", f->latency);
  }
  struct ModuleCounter {
    const char* outcome;
    etl::Counter etl::ModuleFigures::*field;
  };
  const ModuleCounter module_counters[] = {{"processed", &etl::ModuleFigures::processed},
                                           {"filtered", &etl::ModuleFigures::filtered},
                                           {"failed", &etl::ModuleFigures::failed},
                                           {"skipped", &etl::ModuleFigures::skipped},
                                           {"retried", &etl::ModuleFigures::retried},
                                           {"dead_lettered", &etl::ModuleFigures::dead_lettered},
                                           {"not_matched", &etl::ModuleFigures::not_matched}};
  p.family("wasmq_etl_module_messages_total", "counter",
           "Messages per module of a stage, by outcome.");
  for (const auto& f : all) {
    MutexLock lock(f->mutex);
    for (const auto& [priority, stage] : f->stages) {
      for (const auto& m : stage->modules) {
        const std::string labels = "pipeline=\"" + Prometheus::label(f->pipeline_id) +
                                   "\",stage=\"" + std::to_string(priority) + "\",module=\"" +
                                   Prometheus::label(m->module_id) + "\"";
        for (const auto& c : module_counters) {
          p.sample("wasmq_etl_module_messages_total", labels + ",outcome=\"" + c.outcome + "\"",
                   static_cast<double>(load((*m).*c.field)));
        }
      }
    }
  }
  co_return text_response(HttpStatus::ok, p.take(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace status_api_internal
}  // namespace wasmq::http
