// Pipelines as an operator meets them: applied twice without changing, refused under a name
// that is taken, waiting for modules that are not deployed, module errors that do not punish
// good messages, breakers that are logged and shown, and dry runs that leave live figures alone.
// The real binary on loopback ports, driven by the CLI and the admin API.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "broker_api_test.h"
#include "command.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string seed_pipeline(const std::string& name) {
  return testing::slurp(fs::path(WASMQ_TEST_DATA_DIR) / "pipelines" / name);
}

class PipelineOperationsTest : public testing::BrokerApiTest {
 protected:
  testing::CommandRun cli(std::vector<std::string> args, const std::string& input = "") {
    args.push_back("--admin");
    args.push_back(broker_->admin_url());
    return testing::wasmq(args, input);
  }
  std::string log() const { return testing::slurp(broker_->log_path()); }
  // Starts the broker with message-processor in the inline pipeline `id` and one message
  // produced through it to topic "t".
  void start_with_one_message(const std::string& id) {
    start();
    upload("message_processor", "message-processor", "1.0.0");
    admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": ")" + id + R"(", "stages": [
        {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})",
          201);
    data("POST", "/api/v1/topics/t/messages",
         R"({"value": "hi", "headers": {"content-type": "text/plain", "source": "s"}})");
  }
  json::value status(const std::string& id) {
    return admin("GET", "/api/v1/etl/pipelines/" + id + "/status");
  }
};

// The seed 001 document has no pipeline_id: apply names it by its pipeline_name, so applying
// it again changes nothing, and stream output is not doubled.
TEST_F(PipelineOperationsTest, ApplyingTheSameDocumentTwiceKeepsOnePipeline) {
  start();
  upload("message_processor", "message-processor", "1.0.0");
  const fs::path file = dir() / "seed-001.json";
  std::ofstream(file) << seed_pipeline("seed-001-message-transformation.json");
  auto first = cli({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.lines.at(0).at("pipeline_id").as_string(), "message-transformation");
  EXPECT_EQ(first.lines.at(0).at("status").as_string(), "created");
  EXPECT_EQ(first.err, "") << "no warning: its module is deployed";
  auto second = cli({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.lines.at(0).at("status").as_string(), "unchanged");
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines").at("pipelines").as_array().size(), 1u);

  // A POST of it again is refused, saying how to replace it.
  json::value again = admin("POST", "/api/v1/etl/pipelines",
                            seed_pipeline("seed-001-message-transformation.json"), 409);
  EXPECT_NE(std::string(again.at("error").at("message").as_string()).find("PUT"),
            std::string::npos)
      << again;

  // One message in, one out (two pipelines would store it twice), once the pipeline follows
  // its source.
  for (int i = 0; i < 500; ++i) {
    json::value st = status("message-transformation");
    if (st.as_object().contains("running") && st.at("running").as_bool()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  data("POST", "/api/v1/topics/raw-events/messages",
       R"({"key": "once", "value": "hello", "headers": {"content-type": "text/plain",
           "source": "web"}})");
  json::array out;
  for (int i = 0; i < 300 && out.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto reply = data_->request("GET", "/api/v1/topics/processed-events/messages?offset=0");
    if (reply.is_ok() && reply->status == 200) out = parse(*reply).at("messages").as_array();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(consume("processed-events").size(), 1u);

  // The list shows mode, source and destination.
  auto listed = cli({"pipeline", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("MODE"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("stream"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("raw-events"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("processed-events"), std::string::npos) << listed.out;
}

TEST_F(PipelineOperationsTest, TwoPipelinesMayNotShareAName) {
  start();
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "a", "name": "orders",
      "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})",
        201);
  json::value refused = admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "b",
      "name": "orders", "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})",
                              409);
  EXPECT_EQ(refused.at("error").at("field").as_string(), "name") << refused;
  admin("GET", "/api/v1/etl/pipelines/b", "", 404);
}

// A pipeline whose module is not deployed says so everywhere, and its messages are counted
// and logged once in a while, not written as an error record each.
TEST_F(PipelineOperationsTest, APipelineWaitingForItsModuleSaysSo) {
  start();
  const fs::path file = dir() / "p.json";
  std::ofstream(file) << R"({"pipeline_id": "waits", "stages": [{"priority": 0,
      "modules": [{"module_id": "ghost", "topic_filters": [
        {"filter_type": "Exact", "pattern": "orders"}]}]}]})";
  auto applied = cli({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_EQ(applied.lines.at(0).at("state").as_string(), "waiting_for_modules");
  EXPECT_NE(applied.err.find("warning: module \"ghost\" is not deployed"), std::string::npos)
      << applied.err;
  EXPECT_EQ(status("waits").at("state").as_string(), "waiting_for_modules");
  auto listed = cli({"pipeline", "list"});
  EXPECT_NE(listed.out.find("waiting_for_modules"), std::string::npos) << listed.out;

  for (int i = 0; i < 3; ++i) {
    json::value r = data("POST", "/api/v1/topics/orders/messages", R"({"value": "o"})");
    EXPECT_EQ(r.at("results").at(0).at("status").as_string(), "stored") << r;
  }
  data("GET", "/api/v1/topics/etl-errors/messages?offset=0", "", 404);
  json::value metrics = admin("GET", "/api/v1/etl/pipelines/waits/metrics");
  EXPECT_EQ(metrics.at("messages_by_stage").at("0").at("modules").at("ghost").at("not_deployed").as_int64(), 3)
      << metrics;
  const std::string text = log();
  const std::string line = "pipeline waits waits for module ghost";
  ASSERT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(text.find(line), text.rfind(line)) << "rate-limited: one line for three messages";

  // Deployed, it runs.
  upload("header_adder_single", "ghost");
  EXPECT_EQ(status("waits").at("state").as_string(), "running");
  EXPECT_EQ(status("waits").at("modules_not_deployed").as_array().size(), 0u);
}

// Malformed messages the module refuses with its own error result do not open the breaker: the
// good message after them is processed (seed 000's defaults: 5 failures, 30 s open).
TEST_F(PipelineOperationsTest, ModuleErrorsDoNotOpenTheBreakerButTrapsDoAndItIsShown) {
  start();
  upload("etl_faulty", "picky");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "picky", "name": "picky",
      "error_handling": "SendToDeadLetter", "stages": [{"priority": 0, "modules": [
        {"module_id": "picky", "topic_filters": [{"filter_type": "Exact", "pattern": "logs"}],
         "instance_config": {"custom_config": {"error_word": "bad", "trap_word": "boom"}}}]}]})",
        201);
  for (int i = 0; i < 6; ++i) {
    json::value r = data("POST", "/api/v1/topics/logs/messages", R"({"value": "bad input"})");
    EXPECT_EQ(r.at("results").at(0).at("status").as_string(), "dead_lettered") << r;
  }
  json::value good = data("POST", "/api/v1/topics/logs/messages", R"({"value": "fine"})");
  EXPECT_EQ(good.at("results").at(0).at("status").as_string(), "stored") << good;
  json::value s = status("picky");
  const json::object& breakers = s.at("circuit_breakers").as_object();
  EXPECT_EQ(breakers.at("failure_threshold").as_int64(), 5);
  EXPECT_EQ(breakers.at("open_ms").as_int64(), 30000);
  EXPECT_EQ(breakers.at("count_module_errors").as_bool(), false);
  ASSERT_EQ(breakers.at("modules").as_array().size(), 1u) << s;
  EXPECT_EQ(breakers.at("modules").at(0).at("state").as_string(), "closed");
  // Each failure is logged (rate-limited) with what was done.
  EXPECT_NE(log().find("pipeline picky, module picky on topic logs: module error: asked to fail "
                       "on bad; dead-lettered to dlq.etl.logs"),
            std::string::npos)
      << log();

  // Traps are the module's failures: five open it, which is logged and shown.
  for (int i = 0; i < 5; ++i) data("POST", "/api/v1/topics/logs/messages", R"({"value": "boom"})");
  json::value refused = data("POST", "/api/v1/topics/logs/messages", R"({"value": "fine"})");
  EXPECT_NE(std::string(refused.at("results").at(0).at("error").as_string())
                .find("circuit breaker open"),
            std::string::npos)
      << refused;
  s = status("picky");
  const json::object& open = s.at("circuit_breakers").at("modules").at(0).as_object();
  EXPECT_EQ(open.at("state").as_string(), "open") << s;
  EXPECT_EQ(open.at("times_opened").as_int64(), 1);
  EXPECT_GT(open.at("open_remaining_ms").as_int64(), 0);
  EXPECT_NE(log().find("pipeline picky: circuit breaker for module picky-v1.0.0 opened after 5 "
                       "consecutive failures"),
            std::string::npos)
      << log();
}

// A dry run is not traffic: the pipeline's live figures do not move. A stream pipeline's dry
// run reads its source topic by default and shows outputs going to its destination.
TEST_F(PipelineOperationsTest, DryRunsLeaveLiveFiguresAloneAndFollowAStreamPipelinesTopics) {
  start_with_one_message("inline");
  json::value before = admin("GET", "/api/v1/etl/pipelines/inline/metrics");
  ASSERT_EQ(before.at("total_messages_processed").as_int64(), 1) << before;
  auto tested = cli({"pipeline", "test", "inline", "--topic", "t"},
                    R"({"value": "hi", "headers": {"content-type": "text/plain", "source": "s"}})"
                    "\n");
  ASSERT_EQ(tested.exit_code, 0) << tested.err;
  json::value after = admin("GET", "/api/v1/etl/pipelines/inline/metrics");
  EXPECT_EQ(after.at("total_messages_processed"), before.at("total_messages_processed")) << after;
  EXPECT_EQ(after.at("messages_by_stage"), before.at("messages_by_stage")) << after;

  const json::value created = admin("POST", "/api/v1/etl/pipelines",
                                    seed_pipeline("seed-001-message-transformation.json"), 201);
  const std::string id(created.at("pipeline_id").as_string());
  auto stream = cli({"pipeline", "test", id},
                    R"({"value": "hi", "headers": {"content-type": "text/plain", "source": "s"}})"
                    "\n");
  ASSERT_EQ(stream.exit_code, 0) << stream.err;
  const json::object& answer = stream.lines.at(0);
  EXPECT_EQ(answer.at("topic").as_string(), "raw-events");
  EXPECT_EQ(answer.at("results").at(0).at("outputs").at(0).at("topic").as_string(),
            "processed-events")
      << answer;
}

// A dry run of an inline pipeline without a topic uses the one topic its Exact filters name;
// when no module's filters match the topic, the answer (and the CLI, on stderr) warns that
// every message would pass unchanged.
TEST_F(PipelineOperationsTest, AnInlineDryRunPicksItsTopicOrWarns) {
  start();
  upload("header_adder_single", "tagger");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "orders-only", "stages": [
      {"priority": 0, "modules": [{"module_id": "tagger", "topic_filters": [
        {"filter_type": "Exact", "pattern": "orders"}]}]}]})",
        201);
  auto picked = cli({"pipeline", "test", "orders-only"}, "{\"value\": \"o\"}\n");
  ASSERT_EQ(picked.exit_code, 0) << picked.err;
  EXPECT_EQ(picked.lines.at(0).at("topic").as_string(), "orders");
  EXPECT_FALSE(picked.lines.at(0).contains("warnings"));
  EXPECT_EQ(picked.err, "");
  auto missed = cli({"pipeline", "test", "orders-only", "--topic", "payments"},
                    "{\"value\": \"p\"}\n");
  ASSERT_EQ(missed.exit_code, 0) << missed.err;
  EXPECT_NE(missed.err.find("warning: no module's topic_filters match topic \"payments\""),
            std::string::npos)
      << missed.err;
  // Two Exact topics: no guess, "test", and the warning.
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "two", "stages": [
      {"priority": 0, "modules": [{"module_id": "tagger", "topic_filters": [
        {"filter_type": "Exact", "pattern": "a"}, {"filter_type": "Exact", "pattern": "b"}]}]}]})",
        201);
  json::value two = admin("POST", "/api/v1/etl/pipelines/two/test", R"([{"value": "x"}])");
  EXPECT_EQ(two.at("topic").as_string(), "test");
  EXPECT_EQ(two.at("warnings").as_array().size(), 1u) << two;
}

// The cluster health counts the failed modules of every stage of a pipeline, not of its first
// unhealthy stage only; features say what this build serves.
TEST_F(PipelineOperationsTest, ClusterHealthCountsEveryStage) {
  start();
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "gaps", "stages": [
      {"priority": 0, "modules": [{"module_id": "a"}, {"module_id": "b"}]},
      {"priority": 1, "modules": [{"module_id": "c"}, {"module_id": "d"}, {"module_id": "e"}]},
      {"priority": 2, "modules": [{"module_id": "f"}]}]})",
        201);
  json::value health = admin("GET", "/api/v1/cluster/health");
  ASSERT_EQ(health.at("problems").as_array().size(), 1u) << health;
  EXPECT_EQ(health.at("problems").at(0).as_string(),
            "pipeline gaps: 6 module(s) failed, 0 degraded");
  json::value features = admin("GET", "/api/v1/features");
  EXPECT_EQ(features.at("consumer_groups").as_bool(), true);
  EXPECT_EQ(features.at("kafka_api").as_bool(), false) << "kafka.listen is not set";
}

// Upload mistakes are answered with what to do.
TEST_F(PipelineOperationsTest, UploadMistakesSayWhatToDo) {
  start();
  auto bytes = testing::read_module("passthrough");
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.wasm\"\r\n\r\n" +
      std::string(bytes.begin(), bytes.end()) + "\r\n--b--\r\n";
  auto multipart = admin_->request("POST", "/api/v1/etl/modules", body,
                                   "multipart/form-data; boundary=b",
                                   {{"X-Module-Name", "m"}, {"X-Module-Version", "1.0.0"}});
  ASSERT_TRUE(multipart.is_ok());
  EXPECT_EQ(multipart->status, 400);
  EXPECT_NE(multipart->body.find("--data-binary"), std::string::npos) << multipart->body;
  auto no_version = admin_->request("POST", "/api/v1/etl/modules",
                                    std::string(bytes.begin(), bytes.end()),
                                    "application/octet-stream", {{"X-Module-Name", "m"}});
  ASSERT_TRUE(no_version.is_ok());
  EXPECT_EQ(no_version->status, 400);
  json::value error = parse(*no_version);
  EXPECT_EQ(error.at("error").at("code").as_string(), "invalid_argument");
  EXPECT_EQ(error.at("error").at("field").as_string(), "X-Module-Version");
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules").at("modules").as_array().size(), 0u);
}

// Each start logs one line with the version and what it recovered.
TEST_F(PipelineOperationsTest, EachStartLogsWhatItFound) {
  start();
  admin("POST", "/api/v1/etl/modules", "", 400);  // an empty upload: refused, nothing stored
  upload("passthrough", "pass");
  data("POST", "/api/v1/topics", R"({"name": "orders", "partitions": 3})", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "p", "stages": [{"priority": 0,
      "modules": [{"module_id": "pass"}]}]})",
        201);
  ASSERT_NO_FATAL_FAILURE(restart());
  const std::regex line(
      "wasmq [0-9]+\\.[0-9]+\\.[0-9]+ starting: configuration [^ ]*broker\\.toml, data in [^ ]*: "
      "1 topic\\(s\\) with 3 partition\\(s\\), 1 module\\(s\\), 1 pipeline\\(s\\) \\(1 enabled, 0 "
      "stream, 0 from the configuration file\\)");
  EXPECT_TRUE(std::regex_search(log(), line)) << log();
}

// Numbers in answers are plain decimals ("uptime_seconds": 283.1), not Boost.JSON's 2.831E2.
TEST_F(PipelineOperationsTest, AnswersWritePlainNumbers) {
  start_with_one_message("p");
  // A number token (after ':', ',' or '[') with an exponent; paths such as "…-e2e-…" are not.
  const std::regex exponent(R"([:,\[]-?[0-9.]+[eE][-+]?[0-9])");
  for (const char* path : {"/api/v1/status", "/api/v1/etl/status", "/api/v1/metrics",
                           "/api/v1/config", "/api/v1/etl/pipelines/p/metrics",
                           "/api/v1/etl/instance-pool/stats"}) {
    auto reply = admin_->request("GET", path);
    ASSERT_TRUE(reply.is_ok()) << path;
    EXPECT_FALSE(std::regex_search(reply->body, exponent)) << path << ": " << reply->body;
  }
  auto status = cli({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(std::regex_search(status.out, exponent)) << status.out;
  EXPECT_TRUE(status.lines.at(0).at("uptime_seconds").is_double()) << status.out;
}

}  // namespace
}  // namespace wasmq
