// The data API and `wasmq serve` as users meet them: the real binary on loopback ports.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "broker_process.h"
#include "http/client.h"
#include "temp_dir.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;

fs::path test_dir() { return testing::test_temp_dir("wasmq-e2e"); }

class DataApiTest : public ::testing::Test {
 protected:
  void start(const std::string& storage = "", const std::string& extra = "") {
    broker_ = std::make_unique<BrokerProcess>(test_dir(), storage, extra);
    broker_->start();
    client_ = std::make_unique<http::HttpClient>(broker_->data_url());
  }
  void TearDown() override {
    client_.reset();
    broker_.reset();
    fs::remove_all(test_dir());
  }

  // A request whose reply must have `status`; returns the parsed body.
  json::value call(const std::string& method, const std::string& target, const std::string& body,
                   int status) {
    auto reply = client_->request(method, target, body);
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    if (!reply.is_ok()) return nullptr;
    EXPECT_EQ(reply->status, status) << method << " " << target << " -> " << reply->body;
    boost::system::error_code ec;
    json::value v = json::parse(reply->body, ec);
    EXPECT_FALSE(ec) << reply->body;
    return v;
  }

  json::array consume(const std::string& topic, const std::string& query = "offset=0&max_messages=1000") {
    json::value v = call("GET", "/api/v1/topics/" + topic + "/messages?" + query, "", 200);
    return v.is_object() ? v.at("messages").as_array() : json::array();
  }

  std::unique_ptr<BrokerProcess> broker_;
  std::unique_ptr<http::HttpClient> client_;
};

// The seeds' commands (001 §6.1, 000 §6.2): without ETL the message comes back unchanged.
TEST_F(DataApiTest, SeedProduceAndConsumeCommandsWork) {
  start();
  const std::string message = R"({
    "key": "sensor-001",
    "value": "{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}",
    "headers": {
      "content-type": "application/json",
      "source": "iot-sensors",
      "client_ip": "192.168.1.100"
    }
  })";
  json::value produced = call("POST", "/api/v1/topics/raw-events/messages", message, 200);
  EXPECT_EQ(produced.at("topic").as_string(), "raw-events");
  const auto& result = produced.at("results").as_array().at(0).as_object();
  EXPECT_EQ(result.at("status").as_string(), "stored");
  EXPECT_EQ(result.at("records").as_array().at(0).at("offset").as_int64(), 0);

  json::value read = call("GET", "/api/v1/topics/raw-events/messages?offset=0&max_messages=10", "", 200);
  EXPECT_EQ(read.at("high_watermark").as_int64(), 1);
  EXPECT_EQ(read.at("next_offset").as_int64(), 1);
  const auto& m = read.at("messages").as_array().at(0).as_object();
  EXPECT_EQ(m.at("offset").as_int64(), 0);
  EXPECT_EQ(m.at("key").as_string(), "sensor-001");
  EXPECT_EQ(m.at("value").as_string(),
            R"({"temperature_celsius": 23.5, "humidity": 65.2, "sensor_id": "env001"})");
  EXPECT_EQ(m.at("headers").at("client_ip").as_string(), "192.168.1.100");
  EXPECT_GT(m.at("timestamp").as_int64(), 1'700'000'000'000);
}

TEST_F(DataApiTest, TextBinaryKeysHeadersAndBatches) {
  start();
  call("POST", "/api/v1/topics/t/messages",
       R"([{"value":"plain text"},{"key":"k","value_base64":"AP8Q","headers":{"h":"1"},"timestamp":42}])",
       200);
  json::value batch = call("POST", "/api/v1/topics/t/messages",
                           R"({"messages":[{"value":"a"},{"value":"b"},{"value":"c"}]})", 200);
  ASSERT_EQ(batch.at("results").as_array().size(), 3u);
  EXPECT_EQ(batch.at("results").as_array()[2].at("records").as_array()[0].at("offset").as_int64(), 4);
  auto messages = consume("t");
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_EQ(messages[0].at("value").as_string(), "plain text");
  EXPECT_TRUE(messages[0].at("key").is_null());
  EXPECT_EQ(messages[1].at("value_base64").as_string(), "AP8Q");
  EXPECT_FALSE(messages[1].as_object().contains("value"));
  EXPECT_EQ(messages[1].at("key").as_string(), "k");
  EXPECT_EQ(messages[1].at("headers").at("h").as_string(), "1");
  EXPECT_EQ(messages[1].at("timestamp").as_int64(), 42);
  EXPECT_EQ(messages[4].at("value").as_string(), "c");
  // Paging.
  auto page = consume("t", "offset=2&max_messages=2");
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].at("offset").as_int64(), 2);
}

TEST_F(DataApiTest, PartitionsByNumberAndKey) {
  start();
  call("POST", "/api/v1/topics", R"({"name":"p3","partitions":3})", 201);
  json::value out = call("POST", "/api/v1/topics/p3/messages",
                         R"([{"value":"x","partition":2},{"key":"user-7","value":"a"},{"key":"user-7","value":"b"}])",
                         200);
  const auto& results = out.at("results").as_array();
  EXPECT_EQ(results[0].at("records").as_array()[0].at("partition").as_int64(), 2);
  EXPECT_EQ(results[1].at("records").as_array()[0].at("partition"),
            results[2].at("records").as_array()[0].at("partition"));
  auto on_two = consume("p3", "offset=0&partition=2");
  ASSERT_GE(on_two.size(), 1u);
  EXPECT_EQ(on_two[0].at("value").as_string(), "x");
  json::value err = call("GET", "/api/v1/topics/p3/messages?partition=3", "", 404);
  EXPECT_EQ(err.at("error").at("code").as_string(), "not_found");
}

TEST_F(DataApiTest, LongPollWaitsForDataOrTheDeadline) {
  start();
  call("POST", "/api/v1/topics", R"({"name":"lp"})", 201);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    http::HttpClient other(broker_->data_url());
    auto r = other.request("POST", "/api/v1/topics/lp/messages", R"({"value":"late"})");
    EXPECT_TRUE(r.is_ok() && r->status == 200);
  });
  auto start_time = std::chrono::steady_clock::now();
  auto messages = consume("lp", "offset=0&wait_ms=10000");
  auto waited = std::chrono::steady_clock::now() - start_time;
  producer.join();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].at("value").as_string(), "late");
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(9000));  // woken by the data, not the deadline

  start_time = std::chrono::steady_clock::now();
  auto none = consume("lp", "offset=1&wait_ms=200");
  EXPECT_TRUE(none.empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start_time, std::chrono::milliseconds(190));
}

TEST_F(DataApiTest, TopicCrud) {
  start();
  json::value created = call("POST", "/api/v1/topics",
                             R"({"name":"orders","partitions":2,"retention_ms":60000})", 201);
  EXPECT_EQ(created.at("partitions").as_int64(), 2);
  json::value dup = call("POST", "/api/v1/topics", R"({"name":"orders"})", 409);
  EXPECT_EQ(dup.at("error").at("code").as_string(), "already_exists");
  json::value list = call("GET", "/api/v1/topics", "", 200);
  ASSERT_EQ(list.at("topics").as_array().size(), 1u);
  json::value described = call("GET", "/api/v1/topics/orders", "", 200);
  EXPECT_EQ(described.at("retention_ms").as_int64(), 60000);
  EXPECT_EQ(described.at("partition_details").as_array().size(), 2u);
  call("DELETE", "/api/v1/topics/orders", "", 200);
  call("GET", "/api/v1/topics/orders", "", 404);
  call("DELETE", "/api/v1/topics/orders", "", 404);
  EXPECT_EQ(call("GET", "/api/v1/topics", "", 200).at("topics").as_array().size(), 0u);
}

// Bad input: a clear 4xx naming what is wrong, and nothing stored.
TEST_F(DataApiTest, BadInputIsRefusedAndStoresNothing) {
  start("", "[http]\nmax_body_bytes = 4096\n");
  call("POST", "/api/v1/topics/t/messages", R"({"value":"first"})", 200);
  auto expect_error = [&](const std::string& method, const std::string& target,
                          const std::string& body, int status, const std::string& code,
                          const std::string& field) {
    json::value v = call(method, target, body, status);
    ASSERT_TRUE(v.is_object()) << body;
    EXPECT_EQ(v.at("error").at("code").as_string(), code) << body;
    if (!field.empty()) {
      EXPECT_EQ(v.at("error").at("field").as_string(), field) << body;
    }
    EXPECT_FALSE(v.at("error").at("message").as_string().empty());
  };
  expect_error("POST", "/api/v1/topics/t/messages", "{not json", 400, "invalid_json", "");
  expect_error("POST", "/api/v1/topics/t/messages", R"({"value":5})", 400, "invalid_message", "value");
  expect_error("POST", "/api/v1/topics/t/messages", R"({"messages":[{"value":"ok"},{"value":"x","headers":{"a":1}}]})",
               400, "invalid_message", "messages[1].headers.a");
  expect_error("POST", "/api/v1/topics/t/messages", R"([{"value":"ok"},{"value":"x","partition":-1}])",
               400, "invalid_message", "[1].partition");
  expect_error("POST", "/api/v1/topics/t/messages", R"([{"value":"ok"},{"value":"x","partition":9}])",
               400, "invalid_argument", "");
  expect_error("POST", "/api/v1/topics/t/messages", R"({"messages":[]})", 400, "invalid_message", "");
  expect_error("POST", "/api/v1/topics/bad%20name/messages", R"({"value":"x"})", 400, "invalid_argument", "");
  expect_error("POST", "/api/v1/topics", R"({"name":"a/b"})", 400, "invalid_argument", "name");
  expect_error("POST", "/api/v1/topics", R"({"name":"n","partitions":"2"})", 400, "invalid_topic", "partitions");
  expect_error("GET", "/api/v1/topics/t/messages?offset=7", "", 400, "offset_out_of_range", "offset");
  expect_error("GET", "/api/v1/topics/t/messages?offset=-1", "", 400, "invalid_parameter", "offset");
  expect_error("GET", "/api/v1/topics/t/messages?max_messages=abc", "", 400, "invalid_parameter", "max_messages");
  expect_error("GET", "/api/v1/topics/missing/messages", "", 404, "not_found", "");
  std::string huge = R"({"value":")" + std::string(8000, 'x') + R"("})";
  auto reply = client_->request("POST", "/api/v1/topics/t/messages", huge);
  ASSERT_TRUE(reply.is_ok()) << reply.status().message();
  EXPECT_EQ(reply->status, 413) << reply->body;
  // Nothing of the above was stored, and no topic was made.
  auto messages = consume("t");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].at("value").as_string(), "first");
  EXPECT_EQ(call("GET", "/api/v1/topics", "", 200).at("topics").as_array().size(), 1u);
  call("GET", "/health", "", 200);
}

TEST_F(DataApiTest, RestartKeepsMessagesAndStopsCleanly) {
  start("fsync = \"interval\"\nfsync_interval_ms = 10\n");
  for (int i = 0; i < 20; ++i) {
    call("POST", "/api/v1/topics/keep/messages", R"({"value":"m)" + std::to_string(i) + R"("})", 200);
  }
  client_.reset();
  EXPECT_EQ(broker_->stop(SIGTERM), 0) << broker_->log_tail();
  broker_->start();
  client_ = std::make_unique<http::HttpClient>(broker_->data_url());
  auto messages = consume("keep");
  ASSERT_EQ(messages.size(), 20u);
  EXPECT_EQ(messages[19].at("value").as_string(), "m19");
  call("GET", "/ready", "", 200);
}

// [logging]: JSON lines, and `level` applied to the listed targets only.
TEST_F(DataApiTest, LoggingSectionShapesTheLog) {
  start("", "[logging]\nlevel = \"warn\"\ntargets = [\"http\"]\nformat = \"json\"\n");
  client_.reset();
  EXPECT_EQ(broker_->stop(SIGTERM), 0);
  std::ifstream in(broker_->log_path());
  int lines = 0;
  bool broker_info = false, http_info = false;
  for (std::string line; std::getline(in, line);) {
    ++lines;
    json::value v = json::parse(line);  // every line is one JSON object
    const auto target = v.at("target").as_string();
    const auto level = v.at("level").as_string();
    if (target == "broker" && level == "info") broker_info = true;
    if (target == "http" && level == "info") http_info = true;
  }
  EXPECT_GT(lines, 0);
  EXPECT_TRUE(broker_info);   // not listed: stays at info
  EXPECT_FALSE(http_info);    // listed: warn and above only
}

TEST_F(DataApiTest, ProduceAndConsumeCommands) {
  start();
  fs::path input = test_dir() / "input";
  std::ofstream(input) << "plain line one\n{\"key\":\"k\",\"value\":\"json line\",\"headers\":{\"h\":\"v\"}}\n"
                       << "{\"value\": 5}\nplain line three\n";
  std::string base = std::string(WASMQ_BINARY);
  std::string out = (test_dir() / "out").string();
  std::string err = (test_dir() / "err").string();
  int rc = std::system((base + " produce cli --broker " + broker_->data_url() + " <" + input.string() +
                        " >" + out + " 2>" + err).c_str());
  EXPECT_NE(WEXITSTATUS(rc), 0);  // line 3 is refused, with its line number
  std::ifstream err_in(err);
  std::string err_text((std::istreambuf_iterator<char>(err_in)), {});
  EXPECT_NE(err_text.find("line 3: value: must be a string"), std::string::npos) << err_text;
  rc = std::system((base + " consume cli --broker " + broker_->data_url() + " >" + out).c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 0);
  std::ifstream out_in(out);
  std::vector<json::value> lines;
  for (std::string line; std::getline(out_in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("value").as_string(), "plain line one");
  EXPECT_EQ(lines[1].at("headers").at("h").as_string(), "v");
  EXPECT_EQ(lines[2].at("value").as_string(), "plain line three");
  rc = std::system((base + " consume cli -n 1 --offset 1 --broker " + broker_->data_url() + " >" + out).c_str());
  std::ifstream one(out);
  std::string first;
  std::getline(one, first);
  EXPECT_EQ(json::parse(first).at("offset").as_int64(), 1);
}

}  // namespace
}  // namespace wasmq
