// Operating wasmq through the admin API: figures that move with the traffic, Prometheus text that
// agrees with the JSON, the status endpoints of the seeds, and a reload under load.
#include <gtest/gtest.h>

#include <csignal>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "broker_api_test.h"
#include "broker_process.h"
#include "command.h"
#include "http/client.h"
#include "module_files.h"
#include "temp_dir.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;

class OperateTest : public testing::BrokerApiTest {
 protected:
  // Prometheus text: every sample line "name{labels} value" as name+labels -> value. Fails the
  // test on a line that is neither a comment nor a sample.
  std::map<std::string, double> prometheus() {
    auto reply = admin_->request("GET", "/metrics");
    EXPECT_TRUE(reply.is_ok());
    std::map<std::string, double> samples;
    if (!reply.is_ok()) return samples;
    EXPECT_EQ(reply->status, 200);
    static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$)");
    static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
    std::istringstream lines(reply->body);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_match(line, m, sample)) {
        samples[m[1]] = std::stod(m[3]);
      } else {
        EXPECT_TRUE(std::regex_match(line, comment)) << "not Prometheus text: " << line;
      }
    }
    return samples;
  }
};

// After N messages through a pipeline, its counters say N, by stage and module; the Prometheus
// text parses and agrees with the JSON.
TEST_F(OperateTest, FiguresFollowTheTrafficInJsonAndPrometheus) {
  start();
  upload("message_processor", "message-processor");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "count", "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})",
        201);
  json::value before = admin("GET", "/api/v1/etl/pipelines/count/metrics");
  EXPECT_EQ(before.at("total_messages_processed").as_int64(), 0);

  // 30 messages: 20 kept, 10 filtered (spam).
  for (int round = 0; round < 10; ++round) {
    data("POST", "/api/v1/topics/events/messages", R"([
        {"value": "one", "headers": {"content-type": "text/plain", "source": "t"}},
        {"value": "two", "headers": {"content-type": "text/plain", "source": "t"}},
        {"value": "spam!", "headers": {"content-type": "text/plain", "source": "t"}}])");
  }
  json::value m = admin("GET", "/api/v1/etl/pipelines/count/metrics");
  EXPECT_EQ(m.at("total_messages_processed").as_int64(), 30);
  EXPECT_EQ(m.at("messages_filtered").as_int64(), 10);
  EXPECT_EQ(m.at("messages_out").as_int64(), 20);
  EXPECT_EQ(m.at("messages_failed").as_int64(), 0);
  const json::object& stage = m.at("messages_by_stage").at("0").as_object();
  EXPECT_EQ(stage.at("processed").as_int64(), 30);
  const json::object& module = stage.at("modules").at("message-processor").as_object();
  EXPECT_EQ(module.at("processed").as_int64(), 30);
  EXPECT_EQ(module.at("filtered").as_int64(), 10);
  EXPECT_EQ(module.at("latency").at("count").as_int64(), 30);
  EXPECT_GT(m.at("avg_pipeline_latency_ms").to_number<double>(), 0.0);

  json::value status = admin("GET", "/api/v1/etl/status");
  EXPECT_EQ(status.at("active_pipelines").as_int64(), 1);
  EXPECT_EQ(status.at("active_modules").as_int64(), 1);
  const int64_t executions = status.at("total_executions").as_int64();
  EXPECT_GE(executions, 10);  // at least one guest call per produce request
  EXPECT_GT(status.at("average_execution_time_ms").to_number<double>(), 0.0);

  json::value filters = admin("GET", "/api/v1/etl/filters/performance");
  EXPECT_EQ(filters.at("plan_lookups").as_int64(), 10);
  EXPECT_DOUBLE_EQ(filters.at("cache_hit_ratio").to_number<double>(), 0.9);

  auto samples = prometheus();
  EXPECT_EQ(samples["wasmq_etl_pipeline_messages_total{pipeline=\"count\",outcome=\"in\"}"], 30);
  EXPECT_EQ(samples["wasmq_etl_pipeline_messages_total{pipeline=\"count\",outcome=\"filtered\"}"],
            10);
  EXPECT_EQ(samples["wasmq_etl_module_messages_total{pipeline=\"count\",stage=\"0\",module="
                    "\"message-processor\",outcome=\"processed\"}"],
            30);
  EXPECT_EQ(samples["wasmq_etl_module_calls_total"], executions);
  EXPECT_EQ(samples["wasmq_etl_plan_lookups_total{result=\"hit\"}"], 9);
  EXPECT_EQ(samples["wasmq_topic_records{topic=\"events\",partition=\"0\"}"], 20);
  EXPECT_EQ(samples["wasmq_etl_pipeline_latency_seconds_count{pipeline=\"count\"}"], 30);

  // Instances: the pool served most calls from instances kept between them, and the memory in
  // use is measured from the live memories; the JSON and the Prometheus text agree.
  const json::object& pool = m.at("instance_pool_stats").as_object();
  EXPECT_GT(pool.at("instances_reused").as_int64(), 0);
  EXPECT_GT(pool.at("pool_hit_ratio").to_number<double>(), 0.5);
  json::value health = admin("GET", "/api/v1/etl/pipelines/count/health");
  EXPECT_EQ(health.at("status").as_string(), "healthy");
  EXPECT_EQ(health.at("error_rate_percent").to_number<double>(), 0.0);
  EXPECT_TRUE(health.at("last_successful_execution").is_string());
  json::value metrics = admin("GET", "/api/v1/metrics");
  const int64_t memory = metrics.at("etl").at("memory_usage_bytes").as_int64();
  EXPECT_GT(memory, 0);
  EXPECT_EQ(samples["wasmq_etl_memory_usage_bytes"], memory);
  json::value stats = admin("GET", "/api/v1/etl/instance-pool/stats");
  int64_t reused = 0;
  for (const auto& module : stats.at("modules").as_array()) {
    if (module.at("module_id").as_string() == "message-processor-v1.0.0") {
      reused = module.at("reused").as_int64();
    }
  }
  EXPECT_EQ(reused, pool.at("instances_reused").as_int64());
  EXPECT_EQ(samples["wasmq_etl_pool_reuses_total{module=\"message-processor-v1.0.0\"}"], reused);
}

// The seeds' operating endpoints answer with their fields.
TEST_F(OperateTest, SeedStatusEndpointsAnswerWithTheirFields) {
  start();
  json::value health = admin("GET", "/api/v1/cluster/health");
  EXPECT_EQ(health.at("status").as_string(), "healthy");
  EXPECT_EQ(admin("GET", "/api/v1/features").at("etl").as_bool(), true);
  json::value config = admin("GET", "/api/v1/config");
  EXPECT_EQ(config.at("etl").at("execution_timeout_ms").as_int64(), 5000);
  json::value status = admin("GET", "/api/v1/status");
  EXPECT_EQ(status.at("etl").at("enabled").as_bool(), true);
  EXPECT_GE(status.at("uptime_seconds").to_number<double>(), 0.0);
  json::value etl = admin("GET", "/api/v1/etl/status");
  for (const char* field : {"enabled", "memory_limit_bytes", "execution_timeout_ms",
                            "max_concurrent_executions", "active_modules", "active_pipelines",
                            "total_executions", "cache_hit_rate", "average_execution_time_ms"}) {
    EXPECT_TRUE(etl.as_object().contains(field)) << field;
  }
  json::value capabilities = admin("GET", "/api/v1/etl/capabilities");
  EXPECT_EQ(capabilities.at("filter_types").as_array().size(), 6u);
  EXPECT_EQ(capabilities.at("operators").as_array().size(), 10u);
  EXPECT_EQ(capabilities.at("error_strategies").as_array().size(), 4u);
  EXPECT_EQ(admin("GET", "/api/v1/etl/health").at("status").as_string(), "healthy");

  upload("passthrough", "solid");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "h", "stages": [
      {"priority": 0, "modules": [{"module_id": "solid"}]},
      {"priority": 1, "modules": [{"module_id": "missing"}]}]})",
        201);
  data("POST", "/api/v1/topics/t/messages", R"({"value": "x"})");
  json::value ph = admin("GET", "/api/v1/etl/pipelines/h/health");
  EXPECT_EQ(ph.at("pipeline_id").as_string(), "h");
  EXPECT_EQ(ph.at("status").as_string(), "unhealthy");  // one module is not deployed
  EXPECT_EQ(ph.at("stages").at(0).at("modules_healthy").as_int64(), 1);
  EXPECT_EQ(ph.at("stages").at(1).at("modules_failed").as_int64(), 1);
  EXPECT_TRUE(ph.at("last_error").is_string());
  EXPECT_TRUE(ph.at("instance_pool_health").is_string());
  EXPECT_EQ(admin("GET", "/api/v1/etl/health").at("pipelines").at("unhealthy").as_int64(), 1);
  admin("GET", "/api/v1/etl/pipelines/nope/metrics", "", 404);
}

// The configuration file's pipeline "live": one stage running `module`.
std::string pipeline(const std::string& module) {
  return "[[etl.pipelines]]\npipeline_id = \"live\"\n[[etl.pipelines.stages]]\npriority = 0\n"
         "[[etl.pipelines.stages.modules]]\nmodule_id = \"" +
         module + "\"\n";
}

// A reload under load: the file's pipelines change while a producer sends; no message fails or
// is lost, and messages after the reload go through the new pipeline.
TEST_F(OperateTest, ReloadUnderLoadChangesPipelinesWithoutLosingMessages) {
  start(pipeline("plain"));
  upload("passthrough", "plain");
  upload("header_adder", "tagging");
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  std::string error;
  std::thread producer([&] {
    http::HttpClient client(broker_->data_url());
    int next = 0;
    while (!stop) {
      std::string body = "[";
      for (int i = 0; i < 10; ++i)
        body += (i ? ",{\"value\":\"" : "{\"value\":\"") + std::to_string(next + i) + "\"}";
      body += "]";
      auto reply = client.request("POST", "/api/v1/topics/flow/messages", body);
      if (!reply.is_ok() || reply->status != 200 ||
          reply->body.find("\"failed\"") != std::string::npos) {
        ++failed;
        error = reply.is_ok() ? reply->body : reply.status().message();
        return;
      }
      next += 10;
      sent = next;
    }
  });
  while (sent < 200 && failed == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The file now names another module, and a [storage] key that needs a restart changes too.
  std::string config = testing::slurp_file(broker_->config_path());
  config =
      std::regex_replace(config, std::regex("module_id = \"plain\""), "module_id = \"tagging\"");
  config = std::regex_replace(config, std::regex("\\[storage\\]\n"),
                              "[storage]\nsegment_bytes = 2097152\n");
  std::ofstream(broker_->config_path()) << config;
  json::value reloaded =
      admin("POST", "/api/v1/config/reload", R"({"component": "etl", "graceful": true})");
  EXPECT_EQ(reloaded.at("applied").at(0).as_string(), "etl.pipelines: 1 pipeline(s) changed");
  EXPECT_EQ(reloaded.at("restart_required").at(0).as_string(), "storage.segment_bytes");
  const int at_reload = sent;
  while (sent < at_reload + 200 && failed == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  producer.join();
  ASSERT_EQ(failed, 0) << error;

  std::vector<int> seen(sent, 0);
  int tagged = 0;
  int64_t offset = 0;
  while (true) {
    json::value v = data(
        "GET", "/api/v1/topics/flow/messages?max_messages=1000&offset=" + std::to_string(offset));
    const json::array& messages = v.at("messages").as_array();
    if (messages.empty()) break;
    for (const auto& m : messages) {
      int n = std::stoi(std::string(m.at("value").as_string()));
      ASSERT_LT(n, sent.load());
      ++seen[n];
      if (m.at("headers").as_object().contains("processed-by")) ++tagged;
    }
    offset = v.at("next_offset").as_int64();
  }
  for (int n = 0; n < sent; ++n) ASSERT_EQ(seen[n], 1) << "message " << n;
  EXPECT_GT(tagged, 0);
  EXPECT_LT(tagged, sent.load());
  // A file that no longer parses is refused whole; the pipeline in force stays.
  std::ofstream(broker_->config_path()) << config << "\n[etl]\nno_such_key = 1\n";
  json::value refused = admin("POST", "/api/v1/config/reload", "", 400);
  EXPECT_NE(std::string(refused.at("error").at("message").as_string()).find("nothing changed"),
            std::string::npos);
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines/live")
                .at("stages")
                .at(0)
                .at("modules")
                .at(0)
                .at("module_id")
                .as_string(),
            "tagging");
}

// SIGHUP reloads the configuration as POST /api/v1/config/reload does (systemctl reload): the
// file's pipelines change, a bad file is refused and logged, and the broker keeps serving.
TEST_F(OperateTest, SighupReloadsTheConfigurationAndABadFileChangesNothing) {
  start(pipeline("plain"));
  upload("passthrough", "plain");
  upload("header_adder", "tagging");
  auto module_in_force = [&] {
    return std::string(admin("GET", "/api/v1/etl/pipelines/live")
                           .at("stages").at(0).at("modules").at(0).at("module_id").as_string());
  };
  ASSERT_EQ(module_in_force(), "plain");
  std::string config = testing::slurp_file(broker_->config_path());
  config = std::regex_replace(config, std::regex("module_id = \"plain\""), "module_id = \"tagging\"");
  std::ofstream(broker_->config_path()) << config;
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  bool changed = false;
  for (int i = 0; i < 200 && !changed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    changed = module_in_force() == "tagging";
  }
  EXPECT_TRUE(changed) << "SIGHUP did not reload the file";
  // A file that no longer parses: refused whole and logged; the broker stays up.
  std::ofstream(broker_->config_path()) << config << "\n[etl]\nno_such_key = 1\n";
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  bool logged = false;
  for (int i = 0; i < 200 && !logged; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    logged = broker_->log_tail().find("SIGHUP: ") != std::string::npos &&
             broker_->log_tail().find("nothing changed") != std::string::npos;
  }
  EXPECT_TRUE(logged) << broker_->log_tail();
  EXPECT_EQ(module_in_force(), "tagging");
  data("POST", "/api/v1/topics/after/messages", R"({"value": "still serving"})");
  EXPECT_EQ(broker_->stop(), 0);
}

// [etl] enable_debug_logging logs each module call (with its time, log_execution_times, and its
// instance's memory, log_memory_usage); a call that uses more than cpu_warning_threshold_percent
// of its time limit, or an instance past memory_warning_threshold_percent of its memory limit, is
// a warning.
TEST_F(OperateTest, DebugLoggingLogsCallsAndLimitsNearlyReachedWarn) {
  start(
      "[etl]\nenable_debug_logging = true\nexecution_timeout_ms = 50\n"
      "memory_warning_threshold_percent = 1\n");
  upload("passthrough", "quick");
  upload("infinite_loop", "stuck");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "logged", "stages": [
      {"priority": 0, "continue_on_error": true, "modules": [
        {"module_id": "quick", "instance_config": {"memory_limit_bytes": 1048576}},
        {"module_id": "stuck"}]}]})",
        201);
  data("POST", "/api/v1/topics/logs/messages", R"({"value": "x"})");
  const std::string log = broker_->log_tail(20000);
  EXPECT_TRUE(std::regex_search(
      log,
      std::regex(
          R"(quick-v1\.0\.0 on topic logs: 1 message\(s\), ok, [0-9.]+ ms, memory [0-9]+ bytes)")))
      << log;
  EXPECT_TRUE(std::regex_search(
      log,
      std::regex(R"(stuck-v1\.0\.0: a call on 1 message\(s\) took [0-9.]+ ms of its 50 ms limit)")))
      << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(quick-v1\.0\.0: an instance uses [0-9]+ of its 1048576 bytes of memory)")))
      << log;
}

// The CLI's operating commands against a running broker.
TEST_F(OperateTest, CliShowsStatusMetricsAndReloads) {
  start();
  const std::string url = broker_->admin_url();
  auto status = testing::wasmq({"status", "--admin", url}, "");
  ASSERT_EQ(status.exit_code, 0) << status.err;
  ASSERT_EQ(status.lines.size(), 1u);
  EXPECT_EQ(status.lines[0].at("etl").at("enabled").as_bool(), true);
  auto metrics = testing::wasmq({"metrics", "--admin", url}, "");
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  EXPECT_TRUE(metrics.lines.at(0).contains("etl"));
  auto prometheus = testing::wasmq({"metrics", "--prometheus", "--admin", url}, "");
  ASSERT_EQ(prometheus.exit_code, 0) << prometheus.err;
  EXPECT_NE(prometheus.out.find("# TYPE wasmq_etl_module_calls_total counter"), std::string::npos);
  auto reload = testing::wasmq({"config", "reload", "--admin", url}, "");
  ASSERT_EQ(reload.exit_code, 0) << reload.err;
  EXPECT_EQ(reload.lines.at(0).at("status").as_string(), "reloaded");
}

}  // namespace
}  // namespace wasmq
