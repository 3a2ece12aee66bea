// The data API and `wasmq serve` as users meet them: the real binary on loopback ports.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/json.hpp>
#include <poll.h>
#include <sys/resource.h>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "broker_api_test.h"
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
  expect_error("POST", "/api/v1/topics/t/messages",
               R"([{"value":"ok"},{"value":"x","partition":-1}])", 400, "invalid_message",
               "messages[1].partition");
  expect_error("POST", "/api/v1/topics/t/messages",
               R"([{"value":"ok"},{"value":"x","partition":9}])", 400, "invalid_message",
               "messages[1].partition");
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

// H2: headers are capped per message (1,024) and de-duplicated in linear time on the I/O thread.
// 100k headers in 1.2 MB cost about a minute of one I/O thread before; now a 400 at once.
TEST_F(DataApiTest, HeadersBeyondTheLimitAreRefusedAtOnce) {
  start();
  auto body_with_headers = [](size_t count) {
    std::string body = R"({"value":"x","headers":{)";
    for (size_t i = 0; i < count; ++i) {
      body += (i ? ",\"h" : "\"h") + std::to_string(i) + "\":\"\"";
    }
    return body + "}}";
  };
  for (size_t count : {size_t{1025}, size_t{100'000}}) {
    json::value refused =
        call("POST", "/api/v1/topics/hdr/messages", body_with_headers(count), 400);
    EXPECT_EQ(refused.at("error").at("code").as_string(), "invalid_message");
    EXPECT_EQ(refused.at("error").at("field").as_string(), "headers");
    EXPECT_EQ(
        refused.at("error").at("message").as_string(),
        "headers: " + std::to_string(count) + " headers exceed the limit of 1024 per message");
  }
  json::value in_array =
      call("POST", "/api/v1/topics/hdr/messages",
           "[" + body_with_headers(1) + "," + body_with_headers(2000) + "]", 400);
  EXPECT_EQ(in_array.at("error").at("field").as_string(), "messages[1].headers");
  call("POST", "/api/v1/topics/hdr/messages", body_with_headers(1024), 200);
  // A repeated name keeps its last value.
  call("POST", "/api/v1/topics/hdr/messages",
       R"({"value":"dup","headers":{"a":"1","b":"2","a":"3"}})", 200);
  auto messages = consume("hdr");
  ASSERT_EQ(messages.size(), 2u);  // nothing of the refused requests was stored
  EXPECT_EQ(messages[0].at("headers").as_object().size(), 1024u);
  EXPECT_EQ(messages[1].at("headers"), (json::object{{"a", "3"}, {"b", "2"}}));
}

// H6: one request carries at most 10,000 messages; more is a 413 naming the limit, and nothing
// is stored (4.5M tiny messages in 60 MB took 102 s and 3.7 GB before).
TEST_F(DataApiTest, TooManyMessagesInOneRequestIs413) {
  start();
  auto body_of = [](size_t count) {
    std::string body = "[";
    for (size_t i = 0; i < count; ++i) body += i ? R"(,{"value":"x"})" : R"({"value":"x"})";
    return body + "]";
  };
  json::value refused = call("POST", "/api/v1/topics/many/messages", body_of(10'001), 413);
  EXPECT_EQ(refused.at("error").at("code").as_string(), "too_many_messages");
  EXPECT_EQ(refused.at("error").at("field").as_string(), "messages");
  EXPECT_NE(std::string(refused.at("error").at("message").as_string())
                .find("10001 messages exceed the limit of 10000 per produce request"),
            std::string::npos);
  json::value wrapped =
      call("POST", "/api/v1/topics/many/messages", R"({"messages":)" + body_of(10'001) + "}", 413);
  EXPECT_EQ(wrapped.at("error").at("code").as_string(), "too_many_messages");
  // Counted on the bytes: strings holding commas and brackets are not elements.
  call("POST", "/api/v1/topics/many/messages",
       R"([{"value":"[,],{,},\",,"},)" + body_of(9'999).substr(1), 200);
  // A string that ends in an escaped backslash ends at its quote; an escaped quote does not end
  // it: 10,001 elements, however the backslashes fall.
  call("POST", "/api/v1/topics/many/messages",
       R"([{"value":"\\"},{"value":"\\\",\\\\"},)" + body_of(9'999).substr(1), 413);
  call("DELETE", "/api/v1/topics/many", "", 200);
  call("GET", "/api/v1/topics/many", "", 404);  // not even created
  json::value stored = call("POST", "/api/v1/topics/many/messages", body_of(10'000), 200);
  EXPECT_EQ(stored.at("results").as_array().size(), 10'000u);
  // Stored in bounded batches: a read from the middle decodes one of them, not all 10,000.
  json::value page =
      call("GET", "/api/v1/topics/many/messages?offset=9999&max_messages=1", "", 200);
  EXPECT_EQ(page.at("messages").at(0).at("offset").as_int64(), 9999);
}

// L8: timestamps from 0 to the end of year 9999, or -1 for "now"; anything else is a 400 naming
// the field, and nothing of the request is stored.
TEST_F(DataApiTest, TimestampsOutsideTheRangeAreRefused) {
  start();
  for (const char* bad : {"-9223372036854775808", "9223372036854775807", "253402300800000", "-2"}) {
    json::value v = call(
        "POST", "/api/v1/topics/ts/messages",
        std::string(R"([{"value":"a","timestamp":0},{"value":"b","timestamp":)") + bad + "}]", 400);
    EXPECT_EQ(v.at("error").at("code").as_string(), "invalid_message") << bad;
    EXPECT_EQ(v.at("error").at("field").as_string(), "messages[1].timestamp") << bad;
  }
  call("POST", "/api/v1/topics/ts/messages",
       R"([{"value":"a","timestamp":253402300799999},{"value":"b","timestamp":-1}])", 200);
  auto messages = consume("ts");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].at("timestamp").as_int64(), 253402300799999);
  EXPECT_GT(messages[1].at("timestamp").as_int64(), 1'700'000'000'000);  // the time of the request
}

// L12: every produce error names its field the same way: "messages[i]…" for a list (bare or
// under "messages"), the field alone for a single message, and code invalid_message.
TEST_F(DataApiTest, ProduceErrorsNameTheFieldConsistently) {
  start();
  json::value not_object = call("POST", "/api/v1/topics/e/messages", "[1]", 400);
  EXPECT_EQ(not_object.at("error").at("message").as_string(), "messages[0]: must be a JSON object");
  EXPECT_EQ(not_object.at("error").at("field").as_string(), "messages[0]");
  EXPECT_EQ(not_object.at("error").at("code").as_string(), "invalid_message");
  json::value partition =
      call("POST", "/api/v1/topics/e/messages", R"({"value":"a","partition":99})", 400);
  EXPECT_EQ(partition.at("error").at("code").as_string(), "invalid_message");
  EXPECT_EQ(partition.at("error").at("field").as_string(), "partition");
  EXPECT_EQ(partition.at("error").at("message").as_string(),
            "partition: 99 is out of range (topic \"e\" has 1 partition when created)");
  call("GET", "/api/v1/topics/e", "", 404);  // a refused request creates no topic
  call("POST", "/api/v1/topics/e/messages", R"({"value":"a"})", 200);
  json::value listed = call("POST", "/api/v1/topics/e/messages",
                            R"({"messages":[{"value":"a"},{"value":"b","partition":1}]})", 400);
  EXPECT_EQ(listed.at("error").at("field").as_string(), "messages[1].partition");
  EXPECT_EQ(listed.at("error").at("message").as_string(),
            "messages[1].partition: 1 is out of range (topic \"e\" has 1 partition)");
}

// The data API's limits that need pipelines or both listeners.
class DataApiLimitsTest : public testing::BrokerApiTest {
 protected:
  // `count` plain TCP connections to the data API, sending nothing.
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> raw_connections(
      boost::asio::io_context& io, int count) {
    namespace asio = boost::asio;
    const std::string url = broker_->data_url();
    const auto port = static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    std::vector<std::unique_ptr<asio::ip::tcp::socket>> sockets;
    for (int i = 0; i < count; ++i) {
      sockets.push_back(std::make_unique<asio::ip::tcp::socket>(io));
      sockets.back()->connect(endpoint);
    }
    return sockets;
  }

  // The status of GET /health on the data API, retried for up to 2 s until it is 200.
  int health_once_serving() {
    int status = 0;
    for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
      http::HttpClient client(broker_->data_url());
      auto reply = client.request("GET", "/health", "");
      status = reply.is_ok() ? reply->status : 0;
      if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status;
  }

  // The value of a sample `name` (without labels) in the admin API's /metrics.
  double metric(const std::string& name) {
    auto reply = admin_->request("GET", "/metrics", "");
    if (!reply.is_ok()) return -1;
    size_t at = reply->body.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stod(reply->body.substr(at + name.size() + 2));
  }
};

// H3: a module result with more headers than the limit (100k distinct ones) fails the call at
// once with an error naming the limit, instead of a minute of de-duplication on an ETL worker
// outside the call's time limit.
TEST_F(DataApiLimitsTest, ModuleOutputWithTooManyHeadersFailsTheCallAtOnce) {
  start();
  upload("many_headers", "many-headers");
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "hdr", "error_handling": "SendToDeadLetter", "stages": [
            {"priority": 0, "modules": [{"module_id": "many-headers", "topic_filters": [
              {"filter_type": "Exact", "pattern": "hdr"}]}]}]})",
        201);
  json::value produced = data("POST", "/api/v1/topics/hdr/messages", R"({"value":"x"})");
  const json::object& result = produced.at("results").at(0).as_object();
  EXPECT_EQ(result.at("status").as_string(), "dead_lettered") << produced;
  EXPECT_NE(std::string(result.at("error").as_string())
                .find("100000 headers exceed the limit of 1024 per message"),
            std::string::npos)
      << result;
  // Within the limit the same module's output is stored whole.
  json::value small =
      data("POST", "/api/v1/topics/hdr/messages", R"({"value":"y","headers":{"count":"1000"}})");
  EXPECT_EQ(small.at("results").at(0).at("status").as_string(), "stored") << small;
  json::array stored = consume("hdr");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].at("headers").as_object().size(), 1001u);
}

// M5: produce work waiting for the ETL workers is bounded (etl.max_queued_batches); beyond it a
// request to a topic with pipelines gets 503 with Retry-After, naming the limit, and nothing of
// it is stored or created. Topics without pipelines are not held up.
TEST_F(DataApiLimitsTest, ProduceBeyondTheEtlQueueBoundIs503) {
  start("[etl]\nworkers = 1\nmax_queued_batches = 1\nexecution_timeout_ms = 3000\n");
  upload("infinite_loop", "loop");
  admin("POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "slow", "stages": [
            {"priority": 0, "modules": [{"module_id": "loop", "topic_filters": [
              {"filter_type": "Wildcard", "pattern": "slow*"}]}]}]})",
        201);
  std::thread blocked([url = broker_->data_url()] {
    http::HttpClient client(url);
    auto reply = client.request("POST", "/api/v1/topics/slow/messages", R"({"value":"first"})");
    EXPECT_TRUE(reply.is_ok() && reply->status == 200);
  });
  // Wait until the first request holds the only place (the worker loops for 3 s on it).
  for (int i = 0; i < 200 && metric("wasmq_etl_admitted_batches") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(metric("wasmq_etl_admitted_batches"), 1);
  for (const char* topic : {"slow", "slow-new"}) {
    auto reply = data_->request("POST", std::string("/api/v1/topics/") + topic + "/messages",
                                R"({"value":"refused"})");
    ASSERT_TRUE(reply.is_ok()) << reply.status().message();
    EXPECT_EQ(reply->status, 503) << reply->body;
    EXPECT_EQ(reply->header("Retry-After"), "1");
    json::value body = parse(*reply);
    EXPECT_EQ(body.at("error").at("code").as_string(), "unavailable");
    EXPECT_NE(
        std::string(body.at("error").at("message").as_string()).find("etl.max_queued_batches"),
        std::string::npos);
  }
  data("POST", "/api/v1/topics/other/messages", R"({"value":"no pipeline"})", 200);
  blocked.join();
  json::array stored = consume("slow");
  ASSERT_EQ(stored.size(), 1u);  // the first (stored as produced after the timeout), no other
  EXPECT_EQ(stored[0].at("value").as_string(), "first");
  data("GET", "/api/v1/topics/slow-new", "", 404);
  EXPECT_EQ(metric("wasmq_etl_admitted_batches"), 0);
}

// M1: idle connections beyond broker.max_connections are answered 503 and closed; the data API
// answers again as soon as one of them closes; the admin listener, counted apart, stays reachable
// throughout.
TEST_F(DataApiLimitsTest, IdleConnectionsBeyondTheLimitAreTurnedAwayAndAdminStaysReachable) {
  ::setenv("WASMQ_BROKER_MAX_CONNECTIONS", "4", 1);
  start();
  ::unsetenv("WASMQ_BROKER_MAX_CONNECTIONS");
  namespace asio = boost::asio;
  asio::io_context io;
  auto idle = raw_connections(io, 4);
  auto extra = raw_connections(io, 1);
  std::string answer;
  boost::system::error_code ec;
  asio::read(*extra[0], asio::dynamic_buffer(answer), ec);  // until the server closes it
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find("too_many_connections"), std::string::npos) << answer;
  admin("GET", "/health");
  admin("GET", "/api/v1/status");

  idle.front()->close();
  EXPECT_EQ(health_once_serving(), 200);
}

// M1: a broker out of file descriptors answers each waiting client 503 ("out of file
// descriptors") through its spare descriptor, again and again, instead of leaving them in the
// backlog (or spinning on accept); once descriptors are free it serves as before.
TEST_F(DataApiLimitsTest, OutOfFileDescriptorsWaitingClientsAreAnswered503) {
  start();
  const pid_t pid = broker_->pid();
  size_t open_now = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)e;
    ++open_now;
  }
  // Room for two more descriptors: the soft limit only, so that it can be put back.
  rlimit before{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &before), 0);
  rlimit low = before;
  low.rlim_cur = open_now + 2;
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &low, nullptr), 0);

  namespace asio = boost::asio;
  asio::io_context io;
  auto clients = raw_connections(io, 8);
  // The accepted ones stay silent (idle); the others are answered and closed.
  int answered = 0;
  // Until one second passes without a new answer (each failed accept pauses 50 ms).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<bool> done(clients.size(), false);
  while (std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < clients.size(); ++i) {
      if (done[i]) continue;
      pollfd p{clients[i]->native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      std::string answer;
      boost::system::error_code ec;
      asio::read(*clients[i], asio::dynamic_buffer(answer), ec);  // until the server closes it
      done[i] = true;
      EXPECT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
      EXPECT_NE(answer.find("out of file descriptors"), std::string::npos) << answer;
      ++answered;
      deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    }
  }
  // Two descriptors of room (three while the spare one is lent): the rest were answered, which
  // takes the spare descriptor back after each answer.
  EXPECT_GE(answered, 5);
  EXPECT_NE(broker_->log_tail().find("out of file descriptors"), std::string::npos);

  clients.clear();
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &before, nullptr), 0);
  EXPECT_EQ(health_once_serving(), 200);
  data("POST", "/api/v1/topics/after-emfile/messages", R"({"value":"x"})");
}

}  // namespace
}  // namespace wasmq
