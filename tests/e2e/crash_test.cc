// Durability under crashes: the real broker killed with SIGKILL while a producer sends.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "broker_process.h"
#include "http/client.h"
#include "temp_dir.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;

fs::path test_dir() { return testing::test_temp_dir("wasmq-crash"); }

// Every message a producer sent and the broker acknowledged, with fsync = "always", survives
// SIGKILL: after five crashes and restarts each one is present exactly once, in order, byte for
// byte. Each attempt carries a fresh sequence number, so a retry of an unacknowledged send can
// never be mistaken for an acknowledged message; unacknowledged ones may or may not be there,
// but whatever is there must decode.
TEST(Crash, AcknowledgedMessagesSurviveSigkill) {
  BrokerProcess broker(test_dir(), "fsync = \"always\"\n");
  broker.start();
  std::mutex url_mutex;
  std::string url = broker.data_url();
  std::atomic<bool> done{false};
  std::map<int64_t, std::string> acked;  // sequence -> value, producer thread only until join
  std::atomic<int64_t> next_sequence{0};

  std::thread producer([&] {
    std::string current_url;
    std::unique_ptr<http::HttpClient> client;
    while (!done) {
      {
        std::lock_guard lock(url_mutex);
        if (url != current_url) {
          current_url = url;
          client = current_url.empty() ? nullptr : std::make_unique<http::HttpClient>(current_url, 5000);
        }
      }
      if (!client) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      // Batches of 1 to 3 messages per request.
      const int64_t first = next_sequence.fetch_add(3);
      json::array batch;
      std::vector<std::string> values;
      for (int i = 0; i < 1 + first % 3; ++i) {
        values.push_back("seq=" + std::to_string(first + i) + ";" + std::string(50 + (first + i) % 200, 'a' + (first + i) % 26));
        batch.push_back(json::object{{"key", "k"}, {"value", values.back()}});
      }
      auto reply = client->request("POST", "/api/v1/topics/crash/messages",
                                   json::serialize(json::object{{"messages", batch}}));
      if (!reply.is_ok() || reply->status != 200) continue;  // not acknowledged
      json::value v = json::parse(reply->body);
      const auto& results = v.at("results").as_array();
      for (size_t i = 0; i < results.size(); ++i) {
        if (results[i].at("status") == "stored") acked[first + static_cast<int64_t>(i)] = values[i];
      }
    }
  });

  std::mt19937 random(12345);
  for (int crash = 0; crash < 5; ++crash) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 400));
    {
      std::lock_guard lock(url_mutex);
      url.clear();
    }
    broker.kill_now();
    broker.start();
    std::lock_guard lock(url_mutex);
    url = broker.data_url();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  done = true;
  producer.join();
  ASSERT_GT(acked.size(), 20u) << "the producer got too few acknowledgements to prove anything";

  // Read everything back.
  http::HttpClient client(broker.data_url());
  std::map<int64_t, std::string> stored;  // sequence -> value
  std::vector<int64_t> order;
  int64_t offset = 0;
  for (;;) {
    auto reply = client.request("GET", "/api/v1/topics/crash/messages?offset=" + std::to_string(offset) +
                                           "&max_messages=1000");
    ASSERT_TRUE(reply.is_ok() && reply->status == 200) << (reply.is_ok() ? reply->body : reply.status().message());
    json::value v = json::parse(reply->body);
    const auto& messages = v.at("messages").as_array();
    if (messages.empty()) break;
    for (const auto& m : messages) {
      std::string value(m.at("value").as_string());
      ASSERT_EQ(value.rfind("seq=", 0), 0u) << value;
      int64_t seq = std::stoll(value.substr(4));
      EXPECT_EQ(stored.count(seq), 0u) << "sequence " << seq << " stored twice";
      stored[seq] = value;
      order.push_back(seq);
    }
    offset = v.at("next_offset").as_int64();
  }
  for (const auto& [seq, value] : acked) {
    auto it = stored.find(seq);
    ASSERT_NE(it, stored.end()) << "acknowledged sequence " << seq << " is missing";
    EXPECT_EQ(it->second, value) << "sequence " << seq << " changed";
  }
  // Acknowledged messages appear in the order they were acknowledged.
  int64_t last = -1;
  for (int64_t seq : order) {
    if (!acked.count(seq)) continue;
    EXPECT_GT(seq, last);
    last = seq;
  }
  EXPECT_EQ(broker.stop(), 0) << broker.log_tail();
  fs::remove_all(test_dir());
}

// A segment's tail cut and corrupted by hand: the broker starts, says what it repaired, and
// serves every intact record.
TEST(Recovery, ServesIntactRecordsAfterTailDamage) {
  BrokerProcess broker(test_dir());
  broker.start();
  {
    http::HttpClient client(broker.data_url());
    for (int i = 0; i < 50; ++i) {
      auto r = client.request("POST", "/api/v1/topics/rec/messages",
                              R"({"value":"record )" + std::to_string(i) + R"("})");
      ASSERT_TRUE(r.is_ok() && r->status == 200);
    }
  }
  EXPECT_EQ(broker.stop(), 0);
  fs::path segment = broker.data_dir() / "topics" / "rec" / "0" / "00000000000000000000.log";
  ASSERT_TRUE(fs::exists(segment));
  // Cut into the last batch, then append garbage after it.
  fs::resize_file(segment, fs::file_size(segment) - 5);
  {
    std::ofstream f(segment, std::ios::app | std::ios::binary);
    f << "\x01\x02garbage that is no batch";
  }
  broker.start();
  EXPECT_NE(broker.log_tail().find("recovery:"), std::string::npos) << broker.log_tail();
  http::HttpClient client(broker.data_url());
  auto reply = client.request("GET", "/api/v1/topics/rec/messages?offset=0&max_messages=100");
  ASSERT_TRUE(reply.is_ok());
  json::value v = json::parse(reply->body);
  const auto& messages = v.at("messages").as_array();
  ASSERT_EQ(messages.size(), 49u);
  for (int i = 0; i < 49; ++i) EXPECT_EQ(messages[i].at("value").as_string(), "record " + std::to_string(i));
  // And it takes new messages after the repaired tail.
  auto more = client.request("POST", "/api/v1/topics/rec/messages", R"({"value":"after"})");
  ASSERT_TRUE(more.is_ok() && more->status == 200) << (more.is_ok() ? more->body : "");
  EXPECT_EQ(json::parse(more->body).at("results").at(0).at("records").at(0).at("offset").as_int64(), 49);
  EXPECT_EQ(broker.stop(), 0);
  fs::remove_all(test_dir());
}

}  // namespace
}  // namespace wasmq
