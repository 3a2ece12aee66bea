// ETL in the broker as users meet it: modules uploaded and pipelines created over the admin API,
// messages produced and consumed over the data API, the real binary on loopback ports.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <regex>
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

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string seed_pipeline(const std::string& name) {
  return read_text(fs::path(WASMQ_TEST_DATA_DIR) / "pipelines" / name);
}

class EtlTest : public testing::BrokerApiTest {
 protected:
  // The modules a dry run of `pipeline` on `message` (a message object) in `topic` ran.
  std::vector<std::string> modules_run(const std::string& pipeline, const std::string& topic,
                                       const std::string& message) {
    json::value r = admin("POST", "/api/v1/etl/pipelines/" + pipeline + "/test",
                          R"({"topic":")" + topic + R"(","messages":[)" + message + "]}", 200);
    std::vector<std::string> ran;
    if (!r.is_object()) return ran;
    for (const auto& step : r.at("results").at(0).at("trace").as_array()) {
      if (step.at("ran").as_bool()) ran.push_back(std::string(step.at("module_id").as_string()));
    }
    return ran;
  }
};

constexpr char kSeedMessage[] = R"({
    "key": "sensor-001",
    "value": "{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}",
    "headers": {
      "content-type": "application/json",
      "source": "iot-sensors",
      "client_ip": "192.168.1.100"
    }
  })";

// The seeds' deployment flow (000 §4.1, §4.2, §5.2, §6.1, §6.2) with the message-processor
// module: uploaded, listed, a pipeline created from the §5.2 file (its last stage runs
// message-processor on every topic), a message produced and consumed transformed in place.
TEST_F(EtlTest, SeedDeploymentFlowTransformsMessagesInPlace) {
  start();
  json::value uploaded = upload("message_processor", "message-processor", "1.0.0", 201);
  EXPECT_EQ(uploaded.at("status").as_string(), "uploaded");
  EXPECT_EQ(uploaded.at("module_id").as_string(), "message-processor-v1.0.0");
  EXPECT_EQ(uploaded.at("size_bytes").as_int64(),
            static_cast<int64_t>(testing::read_module("message_processor").size()));

  json::value list = admin("GET", "/api/v1/etl/modules", "", 200);
  ASSERT_EQ(list.at("modules").as_array().size(), 1u);
  EXPECT_EQ(list.at("storage_info").at("module_count").as_int64(), 1);
  json::value info = admin("GET", "/api/v1/etl/modules/message-processor-v1.0.0", "", 200);
  EXPECT_EQ(info.at("name").as_string(), "message-processor");
  EXPECT_EQ(info.at("version").as_string(), "1.0.0");
  EXPECT_EQ(info.at("sha256").as_string().size(), 64u);

  std::string pipeline =
      std::regex_replace(seed_pipeline("seed-000-iot-sensor-processing.json"),
                         std::regex("\"data-formatter\""), "\"message-processor\"");
  json::value created = admin("POST", "/api/v1/etl/pipelines", pipeline, 201);
  EXPECT_EQ(created.at("pipeline_id").as_string(), "iot-sensor-processing");
  EXPECT_EQ(created.at("status").as_string(), "created");
  admin("POST", "/api/v1/etl/pipelines/iot-sensor-processing/start", "", 200);
  json::value status = admin("GET", "/api/v1/etl/pipelines/iot-sensor-processing/status", "", 200);
  EXPECT_EQ(status.at("state").as_string(), "running");

  json::value produced = data("POST", "/api/v1/topics/raw-events/messages", kSeedMessage, 200);
  EXPECT_EQ(produced.at("results").at(0).at("status").as_string(), "stored") << produced;

  json::array messages = consume("raw-events");
  ASSERT_EQ(messages.size(), 1u);
  const json::object& m = messages[0].as_object();
  json::value payload = json::parse(m.at("value").as_string());
  EXPECT_EQ(payload.at("_processed").as_bool(), true);
  EXPECT_DOUBLE_EQ(payload.at("temperature_fahrenheit").to_number<double>(), 74.3);
  EXPECT_EQ(payload.at("sensor_id").as_string(), "env001");
  const json::object& headers = m.at("headers").as_object();
  EXPECT_EQ(headers.at("enriched").as_string(), "true");
  EXPECT_EQ(headers.at("geo_country").as_string(), "Local");
  EXPECT_TRUE(headers.contains("processed_at"));
  EXPECT_EQ(headers.at("source").as_string(), "iot-sensors");
  EXPECT_EQ(m.at("key").as_string(), "sensor-001");
}

// What the produce response says per message: stored, or filtered by a named module.
TEST_F(EtlTest, ProduceResponseNamesTheModuleThatFiltered) {
  start();
  upload("message_processor", "message-processor", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "clean", "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})",
        201);
  json::value produced = data("POST", "/api/v1/topics/inbox/messages", R"([
      {"value": "hello", "headers": {"content-type": "text/plain", "source": "web"}},
      {"value": "buy spam now", "headers": {"content-type": "text/plain", "source": "web"}},
      {"value": "no source header", "headers": {"content-type": "text/plain"}}])",
                              200);
  const json::array& results = produced.at("results").as_array();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].at("status").as_string(), "stored");
  EXPECT_EQ(results[1].at("status").as_string(), "filtered");
  EXPECT_EQ(results[1].at("pipeline_id").as_string(), "clean");
  EXPECT_EQ(results[1].at("module_id").as_string(), "message-processor");
  EXPECT_EQ(results[2].at("status").as_string(), "filtered");
  json::array stored = consume("inbox");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].at("value").as_string(), "[PROCESSED] HELLO");
}

// The [[etl.pipelines]] of 000 §1.1 load from the configuration file, and each module runs
// exactly on the topics its filters select and the messages its rules select.
TEST_F(EtlTest, SeedTomlPipelineRunsEachModuleOnItsTopics) {
  std::string toml = read_text(fs::path(WASMQ_TEST_DATA_DIR) / "config" / "seed-000-broker.toml");
  toml = std::regex_replace(toml, std::regex("modules_path = \"[^\"]*\""),
                            "modules_path = \"" + (dir() / "modules").string() + "\"");
  start(toml);
  for (const char* name :
       {"message-validator", "geolocation-enricher", "content-analyzer", "message-formatter"}) {
    upload("passthrough", name, "1.0.0", 201);
  }
  json::value got = admin("GET", "/api/v1/etl/pipelines/default-enrichment", "", 200);
  EXPECT_EQ(got.at("origin").as_string(), "file");
  EXPECT_EQ(got.at("stages").as_array().size(), 3u);

  const std::string plain = R"({"value": "x"})";
  const std::string with_ip = R"({"value": "x", "headers": {"client_ip": "10.1.2.3"}})";
  using V = std::vector<std::string>;
  // Wildcard "events.*", case-insensitive; Exact "*" matches every topic.
  EXPECT_EQ(modules_run("default-enrichment", "EVENTS.login", plain),
            (V{"message-validator", "message-formatter"}));
  // Regex ^(events|logs)\.(mobile|web)\. with a HeaderValue rule on client_ip.
  EXPECT_EQ(modules_run("default-enrichment", "logs.web.clicks", with_ip),
            (V{"geolocation-enricher", "message-formatter"}));
  EXPECT_EQ(modules_run("default-enrichment", "logs.web.clicks", plain), (V{"message-formatter"}));
  EXPECT_EQ(modules_run("default-enrichment", "events.mobile.tap", with_ip),
            (V{"message-validator", "geolocation-enricher", "message-formatter"}));
  // Suffix ".content", case-insensitive.
  EXPECT_EQ(modules_run("default-enrichment", "blog.CONTENT", plain),
            (V{"content-analyzer", "message-formatter"}));
  EXPECT_EQ(modules_run("default-enrichment", "orders", plain), (V{"message-formatter"}));

  // A pipeline of the file cannot be changed over the API.
  json::value refused =
      admin("PATCH", "/api/v1/etl/pipelines/default-enrichment", R"({"enabled": false})", 409);
  EXPECT_NE(std::string(refused.at("error").at("message").as_string()).find("configuration file"),
            std::string::npos);
  admin("DELETE", "/api/v1/etl/pipelines/default-enrichment", "", 409);
}

// The two example pipelines of 003: created over the API, each module selected by its filters
// and by its rules on headers and payload fields.
TEST_F(EtlTest, Seed003PipelinesSelectModulesByFiltersAndRules) {
  start();
  for (const char* name :
       {"message-validator", "geolocation-enricher", "content-analyzer", "message-formatter",
        "sensor-data-validator", "temperature-converter", "pressure-normalizer"}) {
    upload("passthrough", name, "1.0.0", 201);
  }
  admin("POST", "/api/v1/etl/pipelines", seed_pipeline("seed-003-message-enrichment.json"), 201);
  admin("POST", "/api/v1/etl/pipelines", seed_pipeline("seed-003-iot-sensor-processing.json"), 201);
  using V = std::vector<std::string>;
  const std::string json_message =
      R"({"value": "{}", "headers": {"content-type": "application/json", "client_ip": "1.1.1.1"}})";
  EXPECT_EQ(modules_run("message-enrichment-pipeline", "events.web.visit", json_message),
            (V{"message-validator", "geolocation-enricher", "message-formatter"}));
  EXPECT_EQ(modules_run("message-enrichment-pipeline", "events.web.visit",
                        R"({"value": "x", "headers": {"content-type": "text/plain"}})"),
            (V{"message-formatter"}));

  const std::string celsius =
      R"({"value": "{\"sensor_type\": \"temperature\", \"unit\": \"celsius\"}"})";
  const std::string fahrenheit =
      R"({"value": "{\"sensor_type\": \"temperature\", \"unit\": \"fahrenheit\"}"})";
  const std::string pressure =
      R"({"value": "{\"sensor_type\": \"temperature-pressure\", \"reading\": 3}"})";
  EXPECT_EQ(modules_run("iot-sensor-processing", "iot.sensors.temperature", celsius),
            (V{"sensor-data-validator", "temperature-converter"}));
  EXPECT_EQ(modules_run("iot-sensor-processing", "iot.sensors.temperature", fahrenheit),
            (V{"sensor-data-validator"}));
  EXPECT_EQ(modules_run("iot-sensor-processing", "iot.sensors.pressure", pressure),
            (V{"sensor-data-validator", "pressure-normalizer"}));
  EXPECT_EQ(
      modules_run("iot-sensor-processing", "iot.sensors.pressure", R"({"value": "not json"})"),
      (V{}));
}

// Modules and API pipelines are on disk: after a restart they are back and still transform.
TEST_F(EtlTest, ModulesAndPipelinesSurviveRestart) {
  start();
  upload("message_processor", "message-processor", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "keep", "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor-v1.0.0"}]}]})",
        201);
  ASSERT_NO_FATAL_FAILURE(restart());
  json::value list = admin("GET", "/api/v1/etl/modules", "", 200);
  ASSERT_EQ(list.at("modules").as_array().size(), 1u);
  EXPECT_EQ(list.at("modules").at(0).at("used_by").at(0).as_string(), "keep");
  json::value pipeline = admin("GET", "/api/v1/etl/pipelines/keep", "", 200);
  EXPECT_EQ(pipeline.at("origin").as_string(), "api");
  data("POST", "/api/v1/topics/t/messages",
       R"({"value": "abc", "headers": {"content-type": "text/plain", "source": "s"}})", 200);
  json::array stored = consume("t");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].at("value").as_string(), "[PROCESSED] ABC");
  // Pinned by an enabled pipeline: the module cannot be deleted.
  admin("DELETE", "/api/v1/etl/modules/message-processor-v1.0.0", "", 409);
}

// Bad uploads and bad pipelines get a clear error naming the problem, and change nothing.
TEST_F(EtlTest, BadUploadsAndPipelinesChangeNothing) {
  start();
  json::value missing = upload("missing_export", "bad", "1.0.0", 400);
  EXPECT_NE(std::string(missing.at("error").at("message").as_string()).find("process_message"),
            std::string::npos)
      << missing;
  json::value import = upload("unsupported_import", "bad", "1.0.0", 400);
  EXPECT_NE(std::string(import.at("error").at("message").as_string()).find("unsupported import"),
            std::string::npos)
      << import;
  upload("passthrough", "good", "one", 400);
  upload("passthrough", "bad name!", "1.0.0", 400);
  upload("passthrough", "good", "1.0.0", 201);
  upload("passthrough", "good", "1.0.0", 409);
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules", "", 200).at("modules").as_array().size(), 1u);

  json::value bad = admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "p", "stages": [
      {"priority": 0, "modules": [{"module_id": "good", "topic_filters": [
        {"filter_type": "Regex", "pattern": "(unclosed"}]}]}]})",
                          422);
  EXPECT_EQ(bad.at("error").at("field").as_string(),
            "stages[0].modules[0].topic_filters[0].pattern");
  admin("POST", "/api/v1/etl/pipelines", "{not json", 400);
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines", "", 200).at("pipelines").as_array().size(), 0u);
  // Nothing runs on produce: the message is stored as sent.
  data("POST", "/api/v1/topics/t/messages", R"({"value": "as is"})", 200);
  EXPECT_EQ(consume("t").at(0).at("value").as_string(), "as is");
}

// Hot deploy: while a producer sends without pause, a new version of a followed module is
// uploaded. Every message is stored exactly once, by the old version or the new one, and no
// produce request fails.
TEST_F(EtlTest, HotDeployUnderLoadLosesNothing) {
  start();
  // Version 1 passes messages through; version 2 adds "processed-by: header-adder".
  upload("passthrough", "enricher", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "hot", "stages": [
      {"priority": 0, "modules": [{"module_id": "enricher"}]}]})",
        201);
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed_requests{0};
  std::string producer_error;
  std::thread producer([&] {
    http::HttpClient client(broker_->data_url());
    int next = 0;
    while (!stop || next < 400) {
      std::string body = "[";
      for (int i = 0; i < 10; ++i)
        body += (i ? "," : "") + std::string(R"({"value": ")") + std::to_string(next + i) + "\"}";
      body += "]";
      auto reply = client.request("POST", "/api/v1/topics/hot/messages", body);
      if (!reply.is_ok() || reply->status != 200 ||
          reply->body.find("\"failed\"") != std::string::npos) {
        ++failed_requests;
        producer_error = reply.is_ok() ? reply->body : reply.status().message();
        break;
      }
      next += 10;
      sent = next;
    }
  });
  while (sent < 200 && failed_requests == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  upload("header_adder", "enricher", "2.0.0", 201);
  const int at_upload = sent;
  while (sent < at_upload + 400 && failed_requests == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  producer.join();
  ASSERT_EQ(failed_requests, 0) << producer_error;

  std::vector<int> seen(sent, 0);
  int by_new = 0;
  int64_t offset = 0;
  while (true) {
    json::value v = data(
        "GET", "/api/v1/topics/hot/messages?max_messages=1000&offset=" + std::to_string(offset), "",
        200);
    const json::array& messages = v.at("messages").as_array();
    if (messages.empty()) break;
    for (const auto& m : messages) {
      int n = std::stoi(std::string(m.at("value").as_string()));
      ASSERT_GE(n, 0);
      ASSERT_LT(n, sent.load());
      ++seen[n];
      if (m.at("headers").as_object().contains("processed-by")) ++by_new;
    }
    offset = v.at("next_offset").as_int64();
  }
  for (int n = 0; n < sent; ++n) ASSERT_EQ(seen[n], 1) << "message " << n;
  // The last messages were sent well after the upload: the new version ran on them.
  EXPECT_GT(by_new, 0);
  EXPECT_LT(by_new, sent.load());
}

// A module that fails, with SendToDeadLetter: the produce response says dead_lettered with the
// record written to dlq.etl.<topic> (the message as it entered, with the context headers), the
// original topic gets nothing, and an error record goes to the error topic.
TEST_F(EtlTest, FailedMessagesAreDeadLetteredAndReported) {
  start();
  upload("trap", "fragile", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "dlq", "error_handling": "SendToDeadLetter",
      "stages": [{"priority": 0, "modules": [{"module_id": "fragile"}]}]})",
        201);
  json::value produced = data("POST", "/api/v1/topics/orders/messages",
                              R"({"key": "o-1", "value": "order one"})", 200);
  const json::object& result = produced.at("results").at(0).as_object();
  EXPECT_EQ(result.at("status").as_string(), "dead_lettered") << produced;
  EXPECT_EQ(result.at("records").at(0).at("topic").as_string(), "dlq.etl.orders");
  EXPECT_NE(std::string(result.at("error").as_string()).find("trap"), std::string::npos) << result;
  EXPECT_EQ(result.at("module_id").as_string(), "fragile");

  json::array dead = consume("dlq.etl.orders");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].at("value").as_string(), "order one");
  EXPECT_EQ(dead[0].at("key").as_string(), "o-1");
  const json::object& headers = dead[0].at("headers").as_object();
  EXPECT_EQ(headers.at("etl.pipeline_id").as_string(), "dlq");
  EXPECT_EQ(headers.at("etl.module_id").as_string(), "fragile");
  EXPECT_EQ(headers.at("etl.source_topic").as_string(), "orders");
  EXPECT_EQ(headers.at("etl.stage_priority").as_string(), "0");
  EXPECT_TRUE(headers.contains("etl.error"));
  EXPECT_TRUE(headers.contains("etl.failed_at"));
  // Nothing reached the original topic (it exists: the request created it).
  EXPECT_EQ(consume("orders").size(), 0u);

  json::array errors = consume("etl-errors");
  ASSERT_EQ(errors.size(), 1u);
  json::value record = json::parse(errors[0].at("value").as_string());
  EXPECT_EQ(record.at("pipeline_id").as_string(), "dlq");
  EXPECT_EQ(record.at("module_id").as_string(), "fragile");
  EXPECT_EQ(record.at("topic").as_string(), "orders");
  EXPECT_EQ(record.at("message").at("value").as_string(), "order one");
}

// Security settings that cannot be honoured (a tokens file that is not there, signature checks
// without keys) stop the start with a clear reason, rather than leaving the operator believing
// they are protected.
TEST_F(EtlTest, RefusesToStartWithSecuritySettingsItCannotHonour) {
  const std::pair<std::string, std::string> cases[] = {
      {"[security]\ntokens_file = \"/nonexistent/wasmq/tokens\"",
       "security.tokens_file: cannot read /nonexistent/wasmq/tokens"},
      {"[etl]\nenable_module_signature_verification = true",
       "etl.enable_module_signature_verification: needs security.module_signing_keys"}};
  for (const auto& [setting, reason] : cases) {
    broker_ = std::make_unique<BrokerProcess>(dir(), "", setting);
    EXPECT_THROW(broker_->start(), std::runtime_error);
    EXPECT_NE(broker_->log_tail().find(reason), std::string::npos) << broker_->log_tail();
    broker_.reset();
  }
}

// Seed 001's stream pipeline: raw-events is consumed from a committed position and the output
// appended to processed-events; the source stays as produced. Stop pauses it without losing its
// place, start resumes, and after a restart it goes on where it committed (no duplicates).
TEST_F(EtlTest, StreamPipelineFollowsItsSourceFromCommittedPositions) {
  start();
  upload("message_processor", "message-processor", "1.0.0", 201);
  json::value created = admin("POST", "/api/v1/etl/pipelines",
                              seed_pipeline("seed-001-message-transformation.json"), 201);
  const std::string id(created.at("pipeline_id").as_string());
  const std::string status_path = "/api/v1/etl/pipelines/" + id + "/status";
  auto wait_for = [&](auto&& ready) {
    for (int i = 0; i < 500; ++i) {
      json::value s = admin("GET", status_path, "", 200);
      if (ready(s)) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "stream pipeline did not get there: " << admin("GET", status_path, "", 200);
    return json::value();
  };
  auto running = [](const json::value& s) {
    return s.as_object().contains("running") && s.at("running").as_bool();
  };
  wait_for(running);
  // The destination fills as the pipeline reads: wait for `n` records there.
  auto destination = [&](size_t n) {
    json::array got;
    for (int i = 0; i < 500 && got.size() < n; ++i) {
      auto reply = data_->request(
          "GET", "/api/v1/topics/processed-events/messages?offset=0&max_messages=100");
      if (reply.is_ok() && reply->status == 200) got = parse(*reply).at("messages").as_array();
      if (got.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return got;
  };

  data("POST", "/api/v1/topics/raw-events/messages", kSeedMessage, 200);
  json::array out = destination(1);
  ASSERT_EQ(out.size(), 1u);
  json::value payload = json::parse(out[0].at("value").as_string());
  EXPECT_DOUBLE_EQ(payload.at("temperature_fahrenheit").to_number<double>(), 74.3);
  // The source keeps the message as produced.
  EXPECT_EQ(consume("raw-events").at(0).at("value").as_string(),
            "{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}");
  json::value s = wait_for([](const json::value& s) {
    const json::value* positions = s.as_object().if_contains("positions");
    const json::value* p0 =
        positions && positions->is_object() ? positions->as_object().if_contains("0") : nullptr;
    return p0 && p0->as_int64() == 1;
  });
  EXPECT_EQ(s.at("lag").as_int64(), 0);

  admin("POST", "/api/v1/etl/pipelines/" + id + "/stop", "", 200);
  wait_for([](const json::value& s) { return !s.at("running").as_bool(); });
  data("POST", "/api/v1/topics/raw-events/messages", kSeedMessage, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(destination(1).size(), 1u) << "a stopped pipeline must not run";
  admin("POST", "/api/v1/etl/pipelines/" + id + "/start", "", 200);
  EXPECT_EQ(destination(2).size(), 2u);

  ASSERT_NO_FATAL_FAILURE(restart());
  wait_for(running);
  data("POST", "/api/v1/topics/raw-events/messages", kSeedMessage, 200);
  EXPECT_EQ(destination(3).size(), 3u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(destination(3).size(), 3u) << "nothing is processed twice after a clean restart";
}

// The CLI's module and pipeline commands against a running broker.
TEST_F(EtlTest, CliDeploysModulesAndAppliesPipelines) {
  start();
  const std::string admin_url = broker_->admin_url();
  auto run = [&](std::vector<std::string> args, const std::string& input = "") {
    args.push_back("--admin");
    args.push_back(admin_url);
    return testing::wasmq(args, input);
  };
  auto deployed = run({"module", "deploy", testing::module_path("message_processor").string(),
                       "--name", "message-processor", "--version", "1.0.0"});
  ASSERT_EQ(deployed.exit_code, 0) << deployed.err;
  ASSERT_EQ(deployed.lines.size(), 1u);
  EXPECT_EQ(deployed.lines[0].at("module_id").as_string(), "message-processor-v1.0.0");
  auto again = run({"module", "deploy", testing::module_path("message_processor").string(),
                    "--name", "message-processor", "--version", "1.0.0"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("HTTP 409: module message-processor-v1.0.0 already exists"),
            std::string::npos)
      << again.err;
  auto modules = run({"module", "list"});
  ASSERT_EQ(modules.exit_code, 0) << modules.err;
  EXPECT_NE(modules.out.find("message-processor-v1.0.0"), std::string::npos) << modules.out;

  const fs::path file = dir() / "pipeline.json";
  std::ofstream(file) << R"({"pipeline_id": "cli", "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})";
  auto created = run({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.lines.at(0).at("status").as_string(), "created");
  auto replaced = run({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_EQ(replaced.lines.at(0).at("status").as_string(), "updated");
  auto listed = run({"pipeline", "list"});
  EXPECT_NE(listed.out.find("cli"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("running"), std::string::npos) << listed.out;

  auto tested = run({"pipeline", "test", "cli", "--topic", "t"},
                    R"({"value": "hi", "headers": {"content-type": "text/plain", "source": "s"}})"
                    "\n");
  ASSERT_EQ(tested.exit_code, 0) << tested.err;
  const json::object& result = tested.lines.at(0).at("results").at(0).as_object();
  EXPECT_EQ(result.at("outputs").at(0).at("message").at("value").as_string(), "[PROCESSED] HI");
  // A dry run stores nothing.
  data("GET", "/api/v1/topics/t/messages?offset=0", "", 404);

  ASSERT_EQ(run({"pipeline", "stop", "cli"}).exit_code, 0);
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines/cli", "", 200).at("enabled").as_bool(), false);
  auto bad = run({"pipeline", "get", "nope"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("HTTP 404"), std::string::npos) << bad.err;
  ASSERT_EQ(run({"pipeline", "delete", "cli"}).exit_code, 0);
  ASSERT_EQ(run({"module", "delete", "message-processor-v1.0.0"}).exit_code, 0);
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules", "", 200).at("modules").as_array().size(), 0u);
}

}  // namespace
}  // namespace wasmq
