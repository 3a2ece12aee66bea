// ETL in the broker as users meet it: modules uploaded and pipelines created over the admin API,
// messages produced and consumed over the data API, the real binary on loopback ports.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "sanitizer.h"
#include "broker_api_test.h"
#include "broker_process.h"
#include "command.h"
#include "http/client.h"
#include "module_files.h"
#include "temp_dir.h"
#include "wasm_builder.h"

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

void leb(std::vector<uint8_t>& out, uint64_t v) {
  do {
    uint8_t byte = v & 0x7F;
    v >>= 7;
    out.push_back(v ? (byte | 0x80) : byte);
  } while (v);
}

void section(std::vector<uint8_t>& out, uint8_t id, const std::vector<uint8_t>& payload) {
  out.push_back(id);
  leb(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

// `binary` with a custom section holding `tag`: other bytes (a checksum of its own, nothing
// served from V8's cache of compiled modules), the same code.
std::vector<uint8_t> tagged(std::vector<uint8_t> binary, const std::string& tag) {
  std::vector<uint8_t> payload;
  leb(payload, 3);
  payload.insert(payload.end(), {'t', 'a', 'g'});
  payload.insert(payload.end(), tag.begin(), tag.end());
  section(binary, 0, payload);
  return binary;
}

// A module with the ABI's exports (bodies that return 0: a call fails, the module compiles)
// and `functions` more functions, each declaring `locals` i64 locals and running `blocks`
// conditional blocks over them: every block joins all locals again, so TurboFan's work grows
// with functions x locals x blocks while the module stays small.
std::vector<uint8_t> costly_module(uint32_t functions, uint32_t locals, uint32_t blocks,
                                   const std::string& tag) {
  std::vector<uint8_t> out = {0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00};
  std::vector<uint8_t> types;
  leb(types, 4);
  types.insert(types.end(), {0x60, 1, 0x7F, 1, 0x7F});        // 0: alloc (i32) -> i32
  types.insert(types.end(), {0x60, 2, 0x7F, 0x7F, 0});        // 1: dealloc (i32 i32)
  types.insert(types.end(), {0x60, 2, 0x7F, 0x7F, 1, 0x7F});  // 2: process_message
  types.insert(types.end(), {0x60, 0, 0});                    // 3: () -> ()
  section(out, 1, types);
  std::vector<uint8_t> funcs;
  leb(funcs, 3 + functions);
  funcs.insert(funcs.end(), {0, 1, 2});
  for (uint32_t i = 0; i < functions; ++i) funcs.push_back(3);
  section(out, 3, funcs);
  section(out, 5, {1, 0x00, 1});  // one memory, 1 page, no maximum
  std::vector<uint8_t> exports;
  leb(exports, 4);
  auto export_entry = [&](const std::string& name, uint8_t kind, uint8_t index) {
    leb(exports, name.size());
    exports.insert(exports.end(), name.begin(), name.end());
    exports.push_back(kind);
    exports.push_back(index);
  };
  export_entry("memory", 2, 0);
  export_entry("alloc", 0, 0);
  export_entry("dealloc", 0, 1);
  export_entry("process_message", 0, 2);
  section(out, 7, exports);
  std::vector<uint8_t> body;
  body.push_back(1);  // one run of locals
  leb(body, locals);
  body.push_back(0x7E);  // i64
  for (uint32_t b = 0; b < blocks; ++b) {
    body.push_back(0x20);  // local.get
    leb(body, b % locals);
    body.insert(body.end(), {0x50, 0x04, 0x40, 0x42, 0x01, 0x21});  // i64.eqz if i64.const 1
    leb(body, (b * 7 + 1) % locals);                                // local.set
    body.push_back(0x0B);                                           // end
  }
  body.push_back(0x0B);
  std::vector<uint8_t> code;
  leb(code, 3 + functions);
  for (std::vector<uint8_t> small :
       {std::vector<uint8_t>{0, 0x41, 0, 0x0B}, std::vector<uint8_t>{0, 0x0B},
        std::vector<uint8_t>{0, 0x41, 0, 0x0B}}) {
    leb(code, small.size());
    code.insert(code.end(), small.begin(), small.end());
  }
  for (uint32_t i = 0; i < functions; ++i) {
    leb(code, body.size());
    code.insert(code.end(), body.begin(), body.end());
  }
  section(out, 10, code);
  return tagged(std::move(out), tag);
}

// The resident memory of process `pid`, in bytes (VmRSS of /proc/<pid>/status).
uint64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

class EtlTest : public testing::BrokerApiTest {
 protected:
  // Uploads `bytes` as name@version; the reply.
  http::HttpReply upload_bytes(const std::vector<uint8_t>& bytes, const std::string& name,
                               const std::string& version, http::HttpClient* client = nullptr) {
    auto reply = (client ? *client : *admin_)
                     .request("POST", "/api/v1/etl/modules",
                              std::string(bytes.begin(), bytes.end()), "application/octet-stream",
                              {{"X-Module-Name", name}, {"X-Module-Version", version}});
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    return reply.is_ok() ? *reply : http::HttpReply{};
  }

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
  // The seed's other four modules are not built in the seed: the answer says so, and the
  // pipeline waits for them.
  EXPECT_EQ(created.at("warnings").as_array().size(), 4u) << created;
  EXPECT_EQ(created.at("state").as_string(), "waiting_for_modules");
  admin("POST", "/api/v1/etl/pipelines/iot-sensor-processing/start", "", 200);
  json::value status = admin("GET", "/api/v1/etl/pipelines/iot-sensor-processing/status", "", 200);
  EXPECT_EQ(status.at("state").as_string(), "waiting_for_modules");
  EXPECT_EQ(status.at("modules_not_deployed").as_array().size(), 4u) << status;

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
  auto same = run({"pipeline", "apply", "-f", file.string()});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.lines.at(0).at("status").as_string(), "unchanged");
  std::ofstream(file) << R"({"pipeline_id": "cli", "priority": 2, "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})";
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

namespace wasmq {
namespace {

// M4: an upload compiled on an ETL worker with no time bound; two uploads of a 0.8 MB module
// blocked every pipeline for 40 s. Uploads are compiled in a child process now, killed past
// etl.module_compile_timeout_ms, and no worker waits for them.
TEST_F(EtlTest, AnUploadThatCompilesForLongHoldsNoWorkerAndIsRefusedAtTheTimeLimit) {
  // The compile check's child and the broker are instrumented binaries there.
  if (testing::kUnderAddressSanitizer) GTEST_SKIP() << testing::kMemoryFiguresDistorted;
  // One worker: before, the upload held it and the produce below waited for the compilation.
  start("[etl]\nworkers = 1\nmodule_compile_timeout_ms = 1000\n");
  upload("passthrough", "control", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "control", "stages": [
      {"priority": 0, "modules": [{"module_id": "control"}]}]})",
        201);
  data("POST", "/api/v1/topics/warm/messages", R"({"value": "warm"})", 200);

  // Compiles for far longer than the limit (about 5 to 11 s without one, by the machine's load),
  // within the validator's static bounds (at most 10,000 locals per function, 1,000,000 in all).
  const std::vector<uint8_t> slow = costly_module(99, 10'000, 500, "m4");
  std::atomic<bool> upload_answered{false};
  http::HttpReply refused;
  std::thread uploader([&] {
    http::HttpClient client(broker_->admin_url());
    refused = upload_bytes(slow, "slow", "1.0.0", &client);
    upload_answered = true;
  });
  // The broker says when the compilation starts; wait for that event.
  bool started = false;
  for (int i = 0; i < 3000 && !started && !upload_answered; ++i) {
    started = read_text(broker_->log_path()).find("module slow-v1.0.0: compile check started") !=
              std::string::npos;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(started) << "no compile check started";
  json::value produced = data("POST", "/api/v1/topics/other/messages", R"({"value": "now"})", 200);
  EXPECT_FALSE(upload_answered) << "the produce waited for the upload";
  EXPECT_EQ(produced.at("results").at(0).at("status").as_string(), "stored") << produced;
  uploader.join();

  EXPECT_EQ(refused.status, 422) << refused.body;
  json::value error = json::parse(refused.body).at("error");
  EXPECT_EQ(error.at("code").as_string(), "compile_limit_exceeded");
  EXPECT_EQ(error.at("message").as_string(),
            "compiling the module took longer than etl.module_compile_timeout_ms (1000 ms); it "
            "was stopped");
  // Nothing stored: the module is not listed and left no file.
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules/slow-v1.0.0", "", 404).at("error").at("code"),
            "not_found");
  for (const auto& entry : fs::recursive_directory_iterator(broker_->data_dir())) {
    EXPECT_EQ(entry.path().filename().string().find("slow"), std::string::npos) << entry.path();
  }
  // The broker goes on as before.
  EXPECT_EQ(data("POST", "/api/v1/topics/after/messages", R"({"value": "x"})", 200)
                .at("results")
                .at(0)
                .at("status")
                .as_string(),
            "stored");
}

// Uploads wait for the upload thread with their module in memory: at most 4 wait, the next
// gets 503 with Retry-After (before, every upload queued without bound).
TEST_F(EtlTest, UploadsBeyondTheWaitingBoundAreAskedToComeBackLater) {
  start("[etl]\nmodule_compile_timeout_ms = 60000\n");
  std::atomic<bool> slow_answered{false};
  std::thread slow_upload([&] {
    http::HttpClient client(broker_->admin_url());
    upload_bytes(costly_module(99, 10'000, 500, "busy"), "slow", "1.0.0", &client);
    slow_answered = true;
  });
  bool started = false;
  for (int i = 0; i < 3000 && !started; ++i) {
    started = read_text(broker_->log_path()).find("module slow-v1.0.0: compile check started") !=
              std::string::npos;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(started);
  // While it compiles: five more, one after the other, each in its own connection.
  std::vector<std::thread> waiting;
  std::vector<int> statuses(5, 0);
  std::atomic<int> sent{0};
  for (int i = 0; i < 4; ++i) {
    waiting.emplace_back([&, i] {
      http::HttpClient client(broker_->admin_url());
      auto bytes = tagged(testing::read_module("passthrough"), std::to_string(i));
      auto reply = client.request(
          "POST", "/api/v1/etl/modules", std::string(bytes.begin(), bytes.end()),
          "application/octet-stream",
          {{"X-Module-Name", "q" + std::to_string(i)}, {"X-Module-Version", "1.0.0"}});
      statuses[i] = reply.is_ok() ? reply->status : -1;
    });
  }
  // The fifth once the broker has queued the four (it logs each).
  bool queued = false;
  for (int i = 0; i < 3000 && !queued; ++i) {
    const std::string log = read_text(broker_->log_path());
    queued = true;
    for (int q = 0; q < 4; ++q) {
      queued = queued && log.find("module q" + std::to_string(q) + "-v1.0.0: upload queued") !=
                             std::string::npos;
    }
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(queued);
  http::HttpReply fifth = upload_bytes(testing::read_module("passthrough"), "q4", "1.0.0");
  EXPECT_FALSE(slow_answered) << "the slow upload finished too early for this test";
  EXPECT_EQ(fifth.status, 503) << fifth.body;
  EXPECT_EQ(fifth.header("Retry-After"), "1");
  EXPECT_EQ(json::parse(fifth.body).at("error").at("message").as_string(),
            "too many uploads in progress: 4 wait for their compile check already; try again "
            "later");
  for (auto& t : waiting) t.join();
  slow_upload.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(statuses[i], 201) << i;
}

// The compile check in a child process reports V8's own reason for a module it cannot compile.
TEST_F(EtlTest, AnUploadTheEngineCannotCompileIsRefusedWithItsReason) {
  start();
  // Structure and ABI intact, one function body invalid: i32.add on an empty stack.
  std::vector<uint8_t> invalid = testing::WasmBuilder::abi_module().build();
  ASSERT_EQ(invalid[invalid.size() - 3], 0x41);  // the last body is "i32.const 0; end"
  invalid[invalid.size() - 3] = 0x6A;            // i32.add
  invalid[invalid.size() - 2] = 0x01;            // nop
  http::HttpReply refused = upload_bytes(invalid, "broken", "1.0.0");
  EXPECT_EQ(refused.status, 400) << refused.body;
  json::value error = json::parse(refused.body).at("error");
  EXPECT_EQ(error.at("code").as_string(), "invalid_module");
  EXPECT_NE(std::string(error.at("message").as_string()).find("Compiling function"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules", "", 200).at("modules").as_array().size(), 0u);
}

// M4, memory: 99,000 empty functions (600 KB; the validator allows 100,000) need about 140 MiB
// to compile here; the
// red team's 1,000,000 took 2.1 GB of the broker's memory.
TEST_F(EtlTest, AnUploadThatNeedsTooMuchMemoryToCompileIsRefusedAtTheMemoryLimit) {
  // The compile check's child and the broker are instrumented binaries there.
  if (testing::kUnderAddressSanitizer) GTEST_SKIP() << testing::kMemoryFiguresDistorted;
  start("[etl]\nmodule_compile_max_memory_bytes = 67108864\n");
  http::HttpReply refused = upload_bytes(costly_module(99'000, 1, 0, "mem"), "big", "1.0.0");
  EXPECT_EQ(refused.status, 422) << refused.body;
  json::value error = json::parse(refused.body).at("error");
  EXPECT_EQ(error.at("code").as_string(), "compile_limit_exceeded");
  EXPECT_EQ(error.at("message").as_string(),
            "compiling the module used more than etl.module_compile_max_memory_bytes (67108864 "
            "bytes); it was stopped");
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules", "", 200).at("modules").as_array().size(), 0u);
  // A module within the bounds is accepted as before.
  upload("passthrough", "small", "1.0.0", 201);
}

// H5: upload + delete leaked what the upload compiled (about 250 MB per cycle for a 4 MB
// module): nothing released the module objects the workers' isolates kept.
TEST_F(EtlTest, UploadUseAndDeleteCyclesDoNotGrowTheBrokersMemory) {
  // The compile check's child and the broker are instrumented binaries there.
  if (testing::kUnderAddressSanitizer) GTEST_SKIP() << testing::kMemoryFiguresDistorted;
  start("[etl]\nworkers = 2\n");
  // Before: 1 to 3 MiB more per cycle with this module (335 KB), 21 MiB and more over the 20
  // cycles; after: flat (0 to 1 MiB).
  const uint64_t kBound = 10ull << 20;
  const std::vector<uint8_t> module = testing::read_module("message_processor");
  uint64_t after_warm_up = 0;
  for (int cycle = 1; cycle <= 25; ++cycle) {
    const std::string name = "leak" + std::to_string(cycle);
    ASSERT_EQ(upload_bytes(tagged(module, name), name, "1.0.0").status, 201);
    admin("POST", "/api/v1/etl/pipelines",
          R"({"pipeline_id": "p", "stages": [{"priority": 0, "modules": [{"module_id": ")" + name +
              R"("}]}]})",
          201);
    // Compiled into the cache, module objects and instances on the workers.
    data("POST", "/api/v1/topics/h5/messages", R"([{"value": "a"}, {"value": "b"}])", 200);
    admin("DELETE", "/api/v1/etl/pipelines/p", "", 200);
    admin("DELETE", "/api/v1/etl/modules/" + name + "-v1.0.0", "", 200);
    admin("POST", "/api/v1/etl/instance-pool/cleanup", "{}", 200);
    if (cycle == 5) after_warm_up = resident_bytes(broker_->pid());
  }
  const uint64_t at_end = resident_bytes(broker_->pid());
  ASSERT_GT(after_warm_up, 0u);
  EXPECT_LT(at_end, after_warm_up + kBound) << "RSS after cycle 5: " << (after_warm_up >> 20)
                                            << " MiB, after cycle 25: " << (at_end >> 20) << " MiB";
  std::cerr << "RSS after cycle 5: " << (after_warm_up >> 20)
            << " MiB, after cycle 25: " << (at_end >> 20) << " MiB\n";
}

// A stream pipeline from `from` to `to` running the module "tagger".
std::string stream(const std::string& id, const std::string& from, const std::string& to) {
  return R"({"pipeline_id": ")" + id + R"(", "mode": "stream", "source_topic": ")" + from +
         R"(", "destination_topic": ")" + to +
         R"(", "stages": [{"priority": 0, "modules": [{"module_id": "tagger"}]}]})";
}

// M9 over the HTTP API: the second pipeline of a cycle is refused with 409 naming it.
TEST_F(EtlTest, StreamPipelinesCannotFormACycle) {
  start();
  upload("passthrough", "tagger", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", stream("s-a", "sa", "sb"), 201);
  json::value refused = admin("POST", "/api/v1/etl/pipelines", stream("s-b", "sb", "sa"), 409);
  EXPECT_EQ(refused.at("error").at("field").as_string(), "destination_topic");
  EXPECT_NE(std::string(refused.at("error").at("message").as_string())
                .find("stream pipelines would form a cycle, and one message would go round it "
                      "for ever: s-a: sa \u2192 sb \u2192 sa"),
            std::string::npos)
      << refused;
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines", "", 200).at("pipelines").as_array().size(), 1u);
}

// M9 through the error topic: a stream pipeline reading etl-errors with a module that fails
// wrote an error record for each record it read, each embedding the one before (about 2 MB
// records at 200 MB/s until the disk was full). One failing record now makes one error record.
TEST_F(EtlTest, AStreamPipelineFailingOnTheErrorTopicWritesOneErrorRecordPerFailedRecord) {
  start();
  upload("trap", "trap", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "errors-reader", "mode": "stream", "source_topic": "etl-errors",
            "destination_topic": "archive", "start_from": "earliest",
            "error_handling": "SkipModule",
            "stages": [{"priority": 0, "modules": [{"module_id": "trap"}]}]})",
        201);
  data("POST", "/api/v1/topics/etl-errors/messages", R"({"value": "not an error record"})", 200);
  // The record written, then the error record of its failure, each read and passed on (SkipModule)
  // to archive; the error record's failure writes nothing new.
  auto read_topic = [&](const std::string& topic) {
    auto reply =
        data_->request("GET", "/api/v1/topics/" + topic + "/messages?offset=0&max_messages=1000");
    if (!reply.is_ok() || reply->status != 200) return json::array();
    return parse(*reply).at("messages").as_array();
  };
  json::array archived;
  json::value status;
  for (int i = 0; i < 1000; ++i) {
    archived = read_topic("archive");
    status = admin("GET", "/api/v1/etl/pipelines/errors-reader/status", "", 200);
    // Both records read, and committed (the status is updated after the commit).
    const json::value* positions = status.as_object().if_contains("positions");
    const bool committed =
        positions && positions->as_object().contains("0") && positions->at("0").as_int64() >= 2;
    if (archived.size() >= 2 && committed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(archived.size(), 2u) << status;
  json::array errors = consume("etl-errors");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[1].at("headers").at("etl.failure_record").as_string(), "error_record");
  EXPECT_EQ(archived[1].at("headers").at("etl.failure_record").as_string(), "error_record");
  EXPECT_NE(read_text(broker_->log_path())
                .find("stream pipeline errors-reader: failed on a record that is an error record"),
            std::string::npos);
  EXPECT_EQ(status.at("positions").at("0").as_int64(), 2);
  EXPECT_EQ(status.at("lag").as_int64(), 0);
}

// L12: the dry run named a bad message "messages[0].must be a JSON object"; it reads as the
// data API's produce errors now.
TEST_F(EtlTest, DryRunErrorsNameTheMessageLikeProduce) {
  start();
  upload("passthrough", "pass", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "p", "stages": [{"priority": 0, "modules": [{"module_id": "pass"}]}]})",
        201);
  json::value refused = admin("POST", "/api/v1/etl/pipelines/p/test",
                              R"({"topic": "t", "messages": [{"value": "a"}, 1]})", 400);
  EXPECT_EQ(refused.at("error").at("message").as_string(), "messages[1]: must be a JSON object")
      << refused;
  EXPECT_EQ(refused.at("error").at("field").as_string(), "messages[1]") << refused;
  // A bare array names its elements as produce does ("messages[i]"), and a partition is checked
  // as produce checks it.
  json::value bare = admin("POST", "/api/v1/etl/pipelines/p/test",
                           R"([{"value": "a"}, {"value": "b", "partition": -1}])", 400);
  EXPECT_EQ(bare.at("error").at("field").as_string(), "messages[1].partition") << bare;
  EXPECT_EQ(bare.at("error").at("code").as_string(), "invalid_message") << bare;
  // Nothing but "topic" may stand beside the list.
  json::value beside = admin("POST", "/api/v1/etl/pipelines/p/test",
                             R"({"topic": "t", "messages": [{"value": "a"}], "extra": 1})", 400);
  EXPECT_EQ(beside.at("error").at("code").as_string(), "invalid_message") << beside;
}

// L7: a stream pipeline's status showed the server's path of an unreadable positions file.
TEST_F(EtlTest, AStreamPipelinesStatusNamesNoServerPath) {
  start();
  upload("passthrough", "pass", "1.0.0", 201);
  std::filesystem::create_directories(broker_->data_dir() / "streams");
  {
    std::ofstream damaged(broker_->data_dir() / "streams" / "s.json");
    damaged << "{";
  }
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "s", "mode": "stream", "source_topic": "in", "destination_topic": "out",
            "stages": [{"priority": 0, "modules": [{"module_id": "pass"}]}]})",
        201);
  json::value status;
  for (int i = 0; i < 500; ++i) {
    status = admin("GET", "/api/v1/etl/pipelines/s/status", "", 200);
    const json::value* error = status.as_object().if_contains("last_error");
    if (error && error->is_string() && !error->as_string().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status.at("last_error").as_string(),
            "ignoring its unreadable positions file; start_from applies")
      << status;
  EXPECT_EQ(json::serialize(status).find(broker_->data_dir().string()), std::string::npos);
  EXPECT_NE(read_text(broker_->log_path()).find("unreadable positions file"), std::string::npos);
}

// M9 after a restart: api-c (cb -> cc) was persisted; file pipelines cf-a (ca -> cb) and cf-c
// (cc -> ca) added with the broker stopped closed a cycle, and all three ran. Now api-c stays
// stopped, with the reason in its status.
TEST_F(EtlTest, AnApiPipelineClosingACycleWithFilePipelinesIsStoppedAtStart) {
  start();
  upload("passthrough", "tagger", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", stream("api-c", "cb", "cc"), 201);
  data_.reset();
  admin_.reset();
  ASSERT_EQ(broker_->stop(), 0);
  auto file_pipeline = [](const std::string& id, const std::string& from, const std::string& to) {
    return "[[etl.pipelines]]\npipeline_id = \"" + id + "\"\nmode = \"stream\"\nsource_topic = \"" +
           from + "\"\ndestination_topic = \"" + to +
           "\"\n[[etl.pipelines.stages]]\npriority = 0\n[[etl.pipelines.stages.modules]]\n"
           "module_id = \"tagger\"\n";
  };
  std::ofstream(broker_->config_path(), std::ios::app)
      << file_pipeline("cf-a", "ca", "cb") << file_pipeline("cf-c", "cc", "ca");
  start();
  json::value status = admin("GET", "/api/v1/etl/pipelines/api-c/status", "", 200);
  EXPECT_EQ(status.at("state").as_string(), "stopped") << status;
  EXPECT_FALSE(status.at("running").as_bool()) << status;
  EXPECT_NE(std::string(status.at("last_error").as_string())
                .find("stopped at start: stream pipelines of the API and of the configuration file "
                      "would form a cycle, and one message would go round it for ever: api-c: cb "
                      "\u2192 cc \u2192 ca \u2192 cb"),
            std::string::npos)
      << status;
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines/cf-a/status", "", 200).at("state").as_string(),
            "running");
  // Starting it again would close the cycle.
  admin("POST", "/api/v1/etl/pipelines/api-c/start", "", 409);
}

// L1, L2, L3: names that make ambiguous ids, too long for a file name, or hidden files.
TEST_F(EtlTest, ModuleNamesVersionsAndPipelineIdsThatMakeBadFileNamesAreRefused) {
  start();
  upload("passthrough", "col", "1.0.0-v2.0.0", 201);
  json::value ambiguous = upload("passthrough", "col-v1.0.0", "2.0.0", 400);
  EXPECT_EQ(ambiguous.at("error").at("field").as_string(), "X-Module-Name");
  EXPECT_NE(std::string(ambiguous.at("error").at("message").as_string())
                .find("may not contain \"-v\" followed by a digit"),
            std::string::npos)
      << ambiguous;

  json::value too_long = upload("passthrough", "m", "1.0.0-" + std::string(5000, 'p'), 400);
  EXPECT_EQ(too_long.at("error").at("field").as_string(), "X-Module-Version");
  EXPECT_EQ(too_long.at("error").at("message").as_string(),
            "version is 5006 characters long; at most 64 are allowed");
  EXPECT_EQ(too_long.at("error").at("code").as_string(), "invalid_argument");

  for (const char* name : {".", "..", ".hidden"}) {
    json::value dot = upload("passthrough", name, "1.0.0", 400);
    EXPECT_EQ(dot.at("error").at("field").as_string(), "X-Module-Name") << name;
  }
  for (const char* id : {".", ".."}) {
    json::value refused =
        admin("POST", "/api/v1/etl/pipelines",
              std::string(R"({"pipeline_id": ")") + id +
                  R"(", "stages": [{"priority": 0, "modules": [{"module_id": "col"}]}]})",
              422);
    EXPECT_EQ(refused.at("error").at("field").as_string(), "pipeline_id") << id;
  }
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules", "", 200).at("modules").as_array().size(), 1u);
  EXPECT_EQ(admin("GET", "/api/v1/etl/pipelines", "", 200).at("pipelines").as_array().size(), 0u);
}

// L4: a dead letter of a 249-character topic would go to a topic longer than 249 characters;
// the producer got the module's trap text instead of the cause.
TEST_F(EtlTest, ADeadLetterTopicTooLongForANameIsTheReportedCause) {
  start();
  upload("trap", "fragile", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "pdlq", "error_handling": "SendToDeadLetter",
            "dead_letter_config": {"topic_prefix": "LLLL"},
            "stages": [{"priority": 0, "modules": [{"module_id": "fragile"}]}]})",
        201);
  const std::string topic(249, 'L');
  json::value produced =
      data("POST", "/api/v1/topics/" + topic + "/messages", R"({"value": "v"})", 200);
  const json::object& result = produced.at("results").at(0).as_object();
  EXPECT_EQ(result.at("status").as_string(), "failed") << produced;
  EXPECT_EQ(std::string(result.at("error").as_string())
                .rfind("dead-letter topic \"LLLL." + topic +
                           "\" would be 254 characters, more "
                           "than 249 (the module failed: ",
                       0),
            0u)
      << produced;
  // It is counted as what it is, not as dead-lettered.
  json::value metrics = admin("GET", "/api/v1/etl/pipelines/pdlq/metrics", "", 200);
  const json::value& handling = metrics.at("error_handling");
  EXPECT_EQ(handling.at("dead_letter_messages").as_int64(), 0) << metrics;
  EXPECT_EQ(handling.at("dead_letters_unwritable").as_int64(), 1) << metrics;
  // A dead letter of a shorter topic is dead-lettered.
  data("POST", "/api/v1/topics/short/messages", R"({"value": "v"})", 200);
  metrics = admin("GET", "/api/v1/etl/pipelines/pdlq/metrics", "", 200);
  EXPECT_EQ(metrics.at("error_handling").at("dead_letter_messages").as_int64(), 1) << metrics;
  EXPECT_EQ(metrics.at("error_handling").at("dead_letters_unwritable").as_int64(), 1) << metrics;
  // A stream pipeline knows its topic: refused when it is created.
  json::value refused = admin("POST", "/api/v1/etl/pipelines",
                              R"({"pipeline_id": "sdlq", "mode": "stream", "source_topic": ")" +
                                  topic + R"(", "destination_topic": "out",
            "error_handling": "SendToDeadLetter", "dead_letter_config": {"topic_prefix": "LLLL"},
            "stages": [{"priority": 0, "modules": [{"module_id": "fragile"}]}]})",
                              422);
  EXPECT_EQ(refused.at("error").at("field").as_string(), "dead_letter_config.topic_prefix");
}

}  // namespace
}  // namespace wasmq
