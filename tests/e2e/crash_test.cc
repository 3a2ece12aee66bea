// Durability under crashes: the real broker killed with SIGKILL while a producer sends.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <thread>

#include "broker_process.h"
#include "http/client.h"
#include "storage/record_batch.h"
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
  // Cut into the last batch, then append bytes that are no batch and leave it short of its
  // length: a torn write, which recovery cuts. (A last batch of full length with a bad CRC is
  // quarantined instead: PartitionLogTest.QuarantinesAWholeLastBatchWithABadCrc.)
  fs::resize_file(segment, fs::file_size(segment) - 5);
  {
    std::ofstream f(segment, std::ios::app | std::ios::binary);
    f << "\x01\x02g";
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

// Where each batch of a segment file starts.
std::vector<uint64_t> batch_positions(const fs::path& segment) {
  const std::string bytes = testing::slurp_file(segment);
  std::vector<uint64_t> out;
  for (uint64_t p = 0; p + storage::kBatchHeaderSize <= bytes.size();) {
    auto header = storage::parse_batch_header(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(bytes.data()) + p, storage::kBatchHeaderSize));
    if (!header.is_ok()) break;
    out.push_back(p);
    p += header->size();
  }
  return out;
}

void flip_byte(const fs::path& file, uint64_t position) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(position));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(position));
  f.put(static_cast<char>(c ^ 0x5a));
}

json::value get_json(http::HttpClient& client, const std::string& path, int expected_status = 200) {
  auto reply = client.request("GET", path);
  EXPECT_TRUE(reply.is_ok()) << path;
  if (!reply.is_ok()) return nullptr;
  EXPECT_EQ(reply->status, expected_status) << path << ": " << reply->body;
  return json::parse(reply->body);
}

// Reads a partition from offset 0 to its end the way a consumer does (continuing at
// next_offset); returns the values by offset and the skipped ranges.
struct Consumed {
  std::map<int64_t, std::string> values;
  std::vector<std::pair<int64_t, int64_t>> skipped;
  std::string bodies;  // every response, to look for what must not be there
};
Consumed consume_all(http::HttpClient& client, const std::string& topic, int per_request) {
  Consumed out;
  int64_t offset = 0;
  for (int guard = 0; guard < 10'000; ++guard) {
    auto reply = client.request("GET", "/api/v1/topics/" + topic + "/messages?offset=" +
                                           std::to_string(offset) +
                                           "&max_messages=" + std::to_string(per_request));
    EXPECT_TRUE(reply.is_ok() && reply->status == 200) << (reply.is_ok() ? reply->body : "");
    if (!reply.is_ok() || reply->status != 200) break;
    out.bodies += reply->body;
    json::value v = json::parse(reply->body);
    for (const auto& m : v.at("messages").as_array()) {
      out.values[m.at("offset").as_int64()] = std::string(m.at("value").as_string());
    }
    if (const json::value* skipped = v.as_object().if_contains("skipped")) {
      for (const auto& r : skipped->as_array()) {
        out.skipped.emplace_back(r.at("first_offset").as_int64(), r.at("end_offset").as_int64());
      }
    }
    const int64_t next = v.at("next_offset").as_int64();
    if (next >= v.at("high_watermark").as_int64() && v.at("messages").as_array().empty()) break;
    if (next == offset) break;
    offset = next;
  }
  return out;
}

// H1: a name storage reserves is refused before anything is stored; interrupted removals are
// still finished at start.
TEST(Names, ReservedTopicNamesAreRefusedAndCreateNothing) {
  BrokerProcess broker(test_dir());
  broker.start();
  {
    http::HttpClient client(broker.data_url());
    auto produced = client.request("POST", "/api/v1/topics/.deleted-victim/messages",
                                   R"({"value":"important"})");
    ASSERT_TRUE(produced.is_ok());
    EXPECT_EQ(produced->status, 400) << produced->body;
    EXPECT_NE(produced->body.find("cannot start with '.'"), std::string::npos) << produced->body;
    auto created = client.request("POST", "/api/v1/topics", R"({"name": ".deleted-x2"})");
    ASSERT_TRUE(created.is_ok());
    EXPECT_EQ(created->status, 400) << created->body;
    auto kept = client.request("POST", "/api/v1/topics/kept/messages", R"({"value":"important"})");
    ASSERT_TRUE(kept.is_ok() && kept->status == 200);
  }
  EXPECT_EQ(broker.stop(), 0);
  std::set<std::string> on_disk;
  for (const auto& e : fs::directory_iterator(broker.data_dir() / "topics")) {
    on_disk.insert(e.path().filename().string());
  }
  EXPECT_EQ(on_disk, std::set<std::string>{"kept"});
  // A removal that a crash interrupted, in trash/: finished at the next start, with a log line.
  fs::create_directories(broker.data_dir() / "trash" / "gone-1-0" / "0");
  std::ofstream(broker.data_dir() / "trash" / "gone-1-0" / "0" / "00000000000000000000.log") << "x";
  broker.start();
  EXPECT_FALSE(fs::exists(broker.data_dir() / "trash"));
  EXPECT_NE(broker.log_tail().find("interrupted topic removal"), std::string::npos) << broker.log_tail();
  http::HttpClient client(broker.data_url());
  json::value v = get_json(client, "/api/v1/topics/kept/messages?offset=0");
  EXPECT_EQ(v.at("messages").at(0).at("value"), "important");
  EXPECT_EQ(broker.stop(), 0);
  fs::remove_all(test_dir());
}

// M6: one flipped byte in a batch in the middle of the active segment, and one in an older
// segment (which start-up does not read): every good record is served, consumers from 0 reach
// the end, the lost offsets are reported and never reused, and no response shows a path.
TEST(Recovery, QuarantinesCorruptBatchesAndServesEveryGoodOne) {
  BrokerProcess broker(test_dir(), "segment_bytes = 1048576\n");
  broker.start();
  {
    http::HttpClient client(broker.data_url());
    for (int i = 0; i < 300; ++i) {
      auto r = client.request("POST", "/api/v1/topics/c1/messages",
                              R"({"value":"c1 record )" + std::to_string(i) + R"("})");
      ASSERT_TRUE(r.is_ok() && r->status == 200);
    }
    // c2: ~64 KiB per batch, so 1 MiB segments roll: three segments.
    const std::string filler(64 * 1024, 'f');
    for (int i = 0; i < 40; ++i) {
      auto r = client.request("POST", "/api/v1/topics/c2/messages",
                              R"({"value":"c2 record )" + std::to_string(i) + " " + filler + R"("})");
      ASSERT_TRUE(r.is_ok() && r->status == 200);
    }
  }
  EXPECT_EQ(broker.stop(), 0);
  const fs::path c1 = broker.data_dir() / "topics" / "c1" / "0" / "00000000000000000000.log";
  auto c1_batches = batch_positions(c1);
  ASSERT_EQ(c1_batches.size(), 300u);
  flip_byte(c1, c1_batches[150] + 70);
  const fs::path c2 = broker.data_dir() / "topics" / "c2" / "0" / "00000000000000000000.log";
  ASSERT_TRUE(fs::exists(broker.data_dir() / "topics" / "c2" / "0" / "00000000000000000015.log"));
  auto c2_batches = batch_positions(c2);
  ASSERT_GT(c2_batches.size(), 5u);
  flip_byte(c2, c2_batches[3] + 100);

  broker.start();
  EXPECT_NE(broker.log_tail().find("corrupt batch"), std::string::npos) << broker.log_tail();
  http::HttpClient client(broker.data_url());
  const std::string run_dir = test_dir().string();

  Consumed one = consume_all(client, "c1", 100);
  EXPECT_EQ(one.values.size(), 299u);
  EXPECT_EQ(one.values.count(150), 0u);
  EXPECT_EQ(one.values[299], "c1 record 299");
  EXPECT_EQ(one.skipped, (std::vector<std::pair<int64_t, int64_t>>{{150, 151}}));
  EXPECT_EQ(one.bodies.find(run_dir), std::string::npos);

  Consumed two = consume_all(client, "c2", 2);
  EXPECT_EQ(two.values.size(), 39u);
  EXPECT_EQ(two.values.count(3), 0u);
  EXPECT_EQ(two.skipped, (std::vector<std::pair<int64_t, int64_t>>{{3, 4}}));
  EXPECT_EQ(two.bodies.find(run_dir), std::string::npos);
  // Starting inside the lost range.
  json::value at = get_json(client, "/api/v1/topics/c2/messages?offset=3&max_messages=1");
  EXPECT_EQ(at.at("messages").at(0).at("offset"), 4);

  // Reported: the topic's description, the status, the metrics.
  json::value described = get_json(client, "/api/v1/topics/c1");
  EXPECT_EQ(described.at("partition_details").at(0).at("corrupt_ranges"),
            json::parse(R"([{"first_offset":150,"end_offset":151}])"));
  http::HttpClient admin(broker.admin_url());
  json::value status = get_json(admin, "/api/v1/status");
  EXPECT_EQ(status.at("storage").at("corrupt_ranges").as_array().size(), 2u) << status;
  auto metrics = admin.request("GET", "/metrics");
  ASSERT_TRUE(metrics.is_ok());
  EXPECT_NE(metrics->body.find("wasmq_topic_corrupt_offsets{topic=\"c1\",partition=\"0\"} 1"),
            std::string::npos);

  // Offsets are not reused.
  auto more = client.request("POST", "/api/v1/topics/c1/messages", R"({"value":"after"})");
  ASSERT_TRUE(more.is_ok() && more->status == 200);
  EXPECT_EQ(json::parse(more->body).at("results").at(0).at("records").at(0).at("offset").as_int64(), 300);
  EXPECT_EQ(broker.stop(), 0);
  fs::remove_all(test_dir());
}

// M7: one topic whose topic.json is damaged, one stray directory: the broker starts, serves the
// good topic, reports the others, and changes none of them.
TEST(Recovery, StartsAndServesBesideADamagedTopic) {
  BrokerProcess broker(test_dir());
  broker.start();
  {
    http::HttpClient client(broker.data_url());
    for (const char* topic : {"good", "c1"}) {
      auto r = client.request("POST", std::string("/api/v1/topics/") + topic + "/messages",
                              R"({"value":"kept"})");
      ASSERT_TRUE(r.is_ok() && r->status == 200);
    }
  }
  EXPECT_EQ(broker.stop(), 0);
  const fs::path topics = broker.data_dir() / "topics";
  std::ofstream(topics / "c1" / "topic.json", std::ios::trunc) << R"({"name": "c1", "partitions": 1)";
  fs::create_directories(topics / "zzz");
  std::ofstream(topics / "zzz" / "topic.json") << R"({"name":"other","partitions":1})";
  broker.start();
  http::HttpClient client(broker.data_url());
  json::value good = get_json(client, "/api/v1/topics/good/messages?offset=0");
  EXPECT_EQ(good.at("messages").at(0).at("value"), "kept");
  http::HttpClient admin(broker.admin_url());
  json::value status = get_json(admin, "/api/v1/status");
  const auto& unloaded = status.at("storage").at("unloaded_topics").as_array();
  ASSERT_EQ(unloaded.size(), 2u) << status;
  EXPECT_EQ(json::serialize(status).find(test_dir().string()), std::string::npos);
  json::value health = get_json(admin, "/api/v1/cluster/health");
  EXPECT_EQ(health.at("status"), "degraded");
  // Producing to the damaged topic's name does not overwrite it.
  auto produced = client.request("POST", "/api/v1/topics/c1/messages", R"({"value":"x"})");
  ASSERT_TRUE(produced.is_ok());
  EXPECT_EQ(produced->status, 409) << produced->body;
  EXPECT_EQ(testing::slurp_file(topics / "c1" / "topic.json"), R"({"name": "c1", "partitions": 1)");
  EXPECT_EQ(broker.stop(), 0);
  fs::remove_all(test_dir());
}

// The process id of the broker that runs with `config`.
pid_t broker_pid(const fs::path& config) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = testing::slurp_file(e.path() / "cmdline");
    if (cmdline.find(config.string()) != std::string::npos &&
        cmdline.find("serve") != std::string::npos) {
      return static_cast<pid_t>(std::stoi(name));
    }
  }
  return -1;
}

size_t descriptors_of(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// H4, scaled down: a broker limited to 128 descriptors takes 160 auto-created topics (it used to
// stop near 45, two descriptors per partition for good), still answers /health with idle
// sockets open after a restart, and refuses the topic beyond broker.max_topics.
// Starts `broker` with a soft limit of 128 descriptors, storage.max_open_files = 64 and
// broker.max_topics = 160 (inherited from this process, which gets its own limit back whatever
// happens). The broker raises its soft limit to the hard one at start, so the file cache's bound
// is set here rather than derived from the limit.
void start_constrained(BrokerProcess& broker) {
  struct Restore {
    struct rlimit saved;
    Restore() { ::getrlimit(RLIMIT_NOFILE, &saved); }
    ~Restore() {
      ::setrlimit(RLIMIT_NOFILE, &saved);
      ::unsetenv("WASMQ_BROKER_MAX_TOPICS");
      ::unsetenv("WASMQ_STORAGE_MAX_OPEN_FILES");
    }
  } restore;
  struct rlimit low = restore.saved;
  low.rlim_cur = 128;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ::setenv("WASMQ_BROKER_MAX_TOPICS", "160", 1);
  ::setenv("WASMQ_STORAGE_MAX_OPEN_FILES", "64", 1);
  broker.start();
}

TEST(Limits, TopicsDoNotUseUpDescriptorsAndTheCapRefusesTheNextOne) {
  BrokerProcess broker(test_dir());
  start_constrained(broker);
  ASSERT_TRUE(broker.running());
  {
    http::HttpClient client(broker.data_url());
    for (int i = 0; i < 160; ++i) {
      auto r = client.request("POST", "/api/v1/topics/tp" + std::to_string(i) + "/messages",
                              R"({"value":"v"})");
      ASSERT_TRUE(r.is_ok());
      ASSERT_EQ(r->status, 200) << "topic " << i << ": " << r->body;
    }
    auto refused = client.request("POST", "/api/v1/topics/tp160/messages", R"({"value":"v"})");
    ASSERT_TRUE(refused.is_ok());
    EXPECT_EQ(refused->status, 409) << refused->body;
    EXPECT_NE(refused->body.find("broker.max_topics = 160"), std::string::npos) << refused->body;
    auto explicit_create = client.request("POST", "/api/v1/topics", R"({"name": "tp161"})");
    ASSERT_TRUE(explicit_create.is_ok());
    EXPECT_EQ(explicit_create->status, 409) << explicit_create->body;
  }
  EXPECT_FALSE(fs::exists(broker.data_dir() / "topics" / "tp160"));
  const pid_t pid = broker_pid(broker.config_path());
  ASSERT_GT(pid, 0);
  const size_t busy = descriptors_of(pid);
  std::cout << "descriptors after 160 topics: " << busy << "\n";
  EXPECT_LE(busy, 110u);  // 64 segment files at most, plus the process's own
  EXPECT_EQ(broker.stop(), 0);

  start_constrained(broker);
  ASSERT_TRUE(broker.running());
  const pid_t restarted = broker_pid(broker.config_path());
  ASSERT_GT(restarted, 0);
  const size_t idle = descriptors_of(restarted);
  std::cout << "descriptors of an idle broker with 160 topics: " << idle << "\n";
  EXPECT_LT(idle, 64u) << "an idle broker with 160 topics holds " << idle << " descriptors";
  // Idle connections no longer starve the listeners.
  const std::string url = broker.data_url();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  std::vector<int> sockets;
  for (int i = 0; i < 20; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    sockets.push_back(fd);
  }
  http::HttpClient client(broker.data_url(), 5000);
  auto health = client.request("GET", "/health");
  ASSERT_TRUE(health.is_ok()) << health.status().message();
  EXPECT_EQ(health->status, 200);
  json::value v = get_json(client, "/api/v1/topics/tp159/messages?offset=0");
  EXPECT_EQ(v.at("messages").at(0).at("value"), "v");
  for (int fd : sockets) ::close(fd);
  EXPECT_EQ(broker.stop(), 0);
  fs::remove_all(test_dir());
}

}  // namespace
}  // namespace wasmq
