#include "kafka/service.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <map>

#include "common/crc32c.h"
#include "storage/record_batch.h"
#include "temp_dir.h"

namespace wasmq::kafka {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace std::string_literals;

std::string batch_of(int records, int64_t first_timestamp, int64_t base = 0) {
  std::vector<Message> messages;
  for (int i = 0; i < records; ++i) {
    Message m;
    m.key = "k" + std::to_string(i);
    m.value = "value " + std::to_string(i);
    m.headers = {{"h", "x"}};
    m.timestamp = first_timestamp + i;
    messages.push_back(std::move(m));
  }
  std::string out;
  storage::encode_batch(base, messages, &out);
  return out;
}

// A batch of an idempotent producer: producer id, epoch and first sequence in its header.
std::string idempotent_batch(int records, int64_t producer_id, int16_t epoch, int32_t sequence) {
  std::string b = batch_of(records, 1'700'000'000'000);
  auto put = [&](size_t at, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b[at + static_cast<size_t>(i)] = static_cast<char>(v >> (8 * (n - 1 - i)));
  };
  put(43, static_cast<uint64_t>(producer_id), 8);
  put(51, static_cast<uint16_t>(epoch), 2);
  put(53, static_cast<uint32_t>(sequence), 4);
  put(17, crc32c(0, b.data() + 21, b.size() - 21), 4);
  return b;
}

// A request frame (without its size prefix): header v1, then the body `write` writes.
template <typename Body>
std::string frame(ApiKey key, int16_t version, Body write, int32_t correlation = 42) {
  std::string out;
  Writer w(&out);
  w.i16(static_cast<int16_t>(key));
  w.i16(version);
  w.i32(correlation);
  w.nullable_string("test-client");
  if (is_flexible(static_cast<int16_t>(key), version)) w.empty_tagged_fields();
  write(w);
  return out;
}

std::string produce_frame(const std::string& topic, int32_t partition, const std::string& batch,
                          int16_t acks = -1) {
  return frame(ApiKey::kProduce, 7, [&](Writer& w) {
    w.nullable_string(std::nullopt);
    w.i16(acks);
    w.i32(30000);
    w.array_length(1);
    w.string(topic);
    w.array_length(1);
    w.i32(partition);
    w.bytes(batch);
  });
}

std::string fetch_frame(const std::string& topic, int32_t partition, int64_t offset,
                        int32_t max_wait_ms = 0, int32_t min_bytes = 1) {
  return frame(ApiKey::kFetch, 11, [&](Writer& w) {
    w.i32(-1);
    w.i32(max_wait_ms);
    w.i32(min_bytes);
    w.i32(50 << 20);
    w.i8(0);
    w.i32(0);
    w.i32(-1);
    w.array_length(1);
    w.string(topic);
    w.array_length(1);
    w.i32(partition);
    w.i32(-1);
    w.i64(offset);
    w.i64(-1);
    w.i32(1 << 20);
    w.array_length(0);
    w.string("");
  });
}

// One partition's answer in a Fetch v11 response.
struct Fetched {
  int16_t error = 0;
  int64_t high_watermark = -1;
  std::string records;
};

Fetched parse_fetch(const std::string& response) {
  Reader r(response);
  EXPECT_EQ(r.i32(), 42);  // correlation id
  r.i32();                 // throttle
  EXPECT_EQ(r.i16(), 0);   // error
  r.i32();                 // session
  EXPECT_EQ(r.array_length(), 1);
  r.string();
  EXPECT_EQ(r.array_length(), 1);
  Fetched f;
  r.i32();
  f.error = r.i16();
  f.high_watermark = r.i64();
  r.i64();  // last stable offset
  r.i64();  // log start
  EXPECT_EQ(r.array_length(), 0);
  EXPECT_EQ(r.i32(), -1);  // preferred read replica
  auto b = r.bytes();
  f.records.assign(reinterpret_cast<const char*>(b.data()), b.size());
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.remaining(), 0u);
  return f;
}

// Produce v7's answer for one partition: error and base offset.
std::pair<int16_t, int64_t> produced(const std::string& response) {
  Reader r(response);
  r.i32();
  r.array_length();
  r.string();
  r.array_length();
  r.i32();
  int16_t code = r.i16();
  return {code, r.i64()};
}

class KafkaServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = testing::test_temp_dir("wasmq-kafka");
    fs::remove_all(options_.data_dir);
    store_ = std::move(*storage::TopicStore::open(options_, nullptr));
    broker_ = std::make_unique<broker::Broker>(*store_, broker::BrokerOptions{});
    ServiceOptions options;
    options.advertised_port = 19093;
    service_ = std::make_unique<Service>(*broker_, options);
  }
  void TearDown() override {
    service_.reset();
    broker_.reset();
    store_.reset();
    fs::remove_all(options_.data_dir);
  }

  // Runs one request to its end.
  Result<Response> call(const std::string& request) {
    asio::io_context io;
    std::optional<Result<Response>> out;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      out.emplace(co_await service_->handle(
          session_, {reinterpret_cast<const uint8_t*>(request.data()), request.size()}));
    }, asio::detached);
    io.run();
    return std::move(*out);
  }
  std::string ok(const std::string& request) {
    auto r = call(request);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok() || !*r) return "";
    return **r;
  }
  void create_topic(const std::string& name, int32_t partitions) {
    std::string response = ok(frame(ApiKey::kCreateTopics, 4, [&](Writer& w) {
      w.array_length(1);
      w.string(name);
      w.i32(partitions);
      w.i16(1);
      w.array_length(0);
      w.array_length(0);
      w.i32(10000);
      w.boolean(false);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    ASSERT_EQ(r.array_length(), 1);
    r.string();
    ASSERT_EQ(r.i16(), 0);
  }

  // Makes the service require SASL/PLAIN: "app" (token "app-token") is a producer, "boss"
  // ("boss-token") may do anything. Audit events are kept in audited_.
  void require_sasl() {
    auto security = std::make_shared<Security>();
    security->authenticate = [](std::string_view user, std::string_view password) -> std::optional<Caller> {
      if (user == "app" && password == "app-token") return Caller{"app", "producer"};
      if (user == "boss" && password == "boss-token") return Caller{"boss", "admin"};
      return std::nullopt;
    };
    security->allows = [](const Caller& c, Need need) {
      return c.role == "admin" || need == Need::kProduce || need == Need::kDescribeTopics ||
             need == Need::kCreateTopics;
    };
    ServiceOptions options;
    options.security = security;
    options.audit = [this](const AuditEvent& e) {
      audited_.push_back(std::string(e.api) + "|" + (e.caller ? e.caller->name : "-") + "|" +
                         std::string(e.resource) + "|" +
                         (e.result == AuditEvent::Result::kOk ? "ok" : e.result == AuditEvent::Result::kRefused ? "refused" : "failed"));
    };
    service_ = std::make_unique<Service>(*broker_, options);
  }
  // SaslHandshake then SaslAuthenticate v1 with `plain`; the authenticate response's error.
  int16_t sasl_login(const std::string& plain) {
    std::string shake = ok(frame(ApiKey::kSaslHandshake, 1, [](Writer& w) { w.string("PLAIN"); }));
    Reader hr(shake);
    hr.i32();
    EXPECT_EQ(hr.i16(), error::kNone);
    EXPECT_EQ(hr.array_length(), 1);
    EXPECT_EQ(hr.string(), "PLAIN");
    std::string auth = ok(frame(ApiKey::kSaslAuthenticate, 1, [&](Writer& w) { w.bytes(plain); }));
    Reader ar(auth);
    ar.i32();
    const int16_t code = ar.i16();
    ar.nullable_string();
    ar.bytes();
    EXPECT_EQ(ar.i64(), 0);  // session lifetime
    EXPECT_TRUE(ar.ok() && ar.remaining() == 0);
    return code;
  }
  // DeleteTopics v3 of one topic: its error code.
  int16_t delete_topic(const std::string& name) {
    std::string response = ok(frame(ApiKey::kDeleteTopics, 3, [&](Writer& w) {
      w.array_length(1);
      w.string(name);
      w.i32(10000);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    EXPECT_EQ(r.array_length(), 1);
    r.string();
    return r.i16();
  }

  std::vector<std::string> audited_;
  storage::StoreOptions options_;
  std::unique_ptr<storage::TopicStore> store_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<Service> service_;
  Session session_;  // one connection's
};

TEST_F(KafkaServiceTest, ApiVersionsV3AdvertisesTheServedRanges) {
  std::string response = ok(frame(ApiKey::kApiVersions, 3, [](Writer& w) {
    w.compact_string("librdkafka");
    w.compact_string("2.0.2");
    w.empty_tagged_fields();
  }));
  Reader r(response);
  EXPECT_EQ(r.i32(), 42);
  EXPECT_EQ(r.i16(), error::kNone);
  int32_t n = r.compact_array_length();
  std::map<int16_t, std::pair<int16_t, int16_t>> ranges;
  for (int32_t i = 0; i < n; ++i) {
    int16_t key = r.i16();
    int16_t min = r.i16();
    ranges[key] = {min, r.i16()};
    r.skip_tagged_fields();
  }
  r.i32();
  r.skip_tagged_fields();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
  using Range = std::pair<int16_t, int16_t>;
  EXPECT_EQ(ranges[0], Range(0, 7));   // Produce (see below for v0-2)
  EXPECT_EQ(ranges[1], Range(4, 11));  // Fetch
  EXPECT_EQ(ranges[18], Range(0, 3));  // ApiVersions
  EXPECT_EQ(ranges[17], Range(0, 1));  // SaslHandshake
  EXPECT_EQ(ranges[32], Range(0, 2));  // DescribeConfigs
  EXPECT_EQ(ranges[36], Range(0, 1));  // SaslAuthenticate
}

// Produce v0-2 carry message formats v0 and v1: answered per partition with
// UNSUPPORTED_FOR_MESSAGE_FORMAT in the version's own layout, and nothing is stored.
TEST_F(KafkaServiceTest, ProduceBelowV3IsAnsweredWithUnsupportedForMessageFormat) {
  create_topic("t", 1);
  for (int16_t v : {0, 1, 2}) {
    std::string response = ok(frame(ApiKey::kProduce, v, [&](Writer& w) {
      w.i16(-1);
      w.i32(30000);
      w.array_length(1);
      w.string("t");
      w.array_length(1);
      w.i32(0);
      w.bytes(batch_of(1, 5));
    }));
    Reader r(response);
    EXPECT_EQ(r.i32(), 42);
    ASSERT_EQ(r.array_length(), 1);
    EXPECT_EQ(r.string(), "t");
    ASSERT_EQ(r.array_length(), 1);
    EXPECT_EQ(r.i32(), 0);
    EXPECT_EQ(r.i16(), error::kUnsupportedForMessageFormat);
    r.i64();                // base offset
    if (v >= 2) r.i64();    // log append time
    if (v >= 1) r.i32();    // throttle
    EXPECT_TRUE(r.ok() && r.remaining() == 0) << "v" << v;
  }
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 0);
}

TEST_F(KafkaServiceTest, AnApiVersionsVersionNotServedGetsUnsupportedVersionInV0) {
  std::string response = ok(frame(ApiKey::kApiVersions, 9, [](Writer&) {}));
  Reader r(response);
  EXPECT_EQ(r.i32(), 42);
  EXPECT_EQ(r.i16(), error::kUnsupportedVersion);
  EXPECT_GT(r.array_length(6), 0);  // the ranges, in v0's layout, so that the client can pick
}

TEST_F(KafkaServiceTest, FramesThatAreNotRequestsWeServeCloseTheConnection) {
  // An unknown API key, a version below the range, bytes left over, a truncated body.
  EXPECT_FALSE(call(frame(static_cast<ApiKey>(999), 0, [](Writer&) {})).is_ok());
  EXPECT_FALSE(call(frame(ApiKey::kProduce, 2, [](Writer&) {})).is_ok());
  std::string extra = fetch_frame("t", 0, 0) + "x";
  auto refused = call(extra);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("bytes left after the request"), std::string::npos);
  std::string truncated = fetch_frame("t", 0, 0);
  truncated.resize(truncated.size() - 10);
  EXPECT_FALSE(call(truncated).is_ok());
  EXPECT_FALSE(call(std::string("\x00\x03", 2)).is_ok());
}

TEST_F(KafkaServiceTest, ProducedBatchesAreFetchedByteForByteAtTheirOffsets) {
  create_topic("t", 2);
  const std::string first = batch_of(3, 1'700'000'000'000, /*base=*/99);
  const std::string second = batch_of(2, 1'700'000'001'000, /*base=*/7);
  for (const auto* batch : {&first, &second}) {
    std::string response = ok(produce_frame("t", 1, *batch));
    Reader r(response);
    EXPECT_EQ(r.i32(), 42);
    ASSERT_EQ(r.array_length(), 1);
    EXPECT_EQ(r.string(), "t");
    ASSERT_EQ(r.array_length(), 1);
    EXPECT_EQ(r.i32(), 1);
    EXPECT_EQ(r.i16(), error::kNone);
    EXPECT_EQ(r.i64(), batch == &first ? 0 : 3);  // the base offset the log gave it
  }
  Fetched f = parse_fetch(ok(fetch_frame("t", 1, 0)));
  EXPECT_EQ(f.error, error::kNone);
  EXPECT_EQ(f.high_watermark, 5);
  // The stored bytes are the client's, with the base offsets written in (outside the CRC).
  std::string expected_first = first, expected_second = second;
  for (int i = 0; i < 8; ++i) expected_first[i] = 0;
  for (int i = 0; i < 8; ++i) expected_second[i] = static_cast<char>(i == 7 ? 3 : 0);
  EXPECT_EQ(f.records, expected_first + expected_second);
  // From an offset inside the second batch: that batch whole (the client skips what it had).
  EXPECT_EQ(parse_fetch(ok(fetch_frame("t", 1, 4))).records, expected_second);
  // The other partition is empty; an offset past the end is out of range.
  EXPECT_EQ(parse_fetch(ok(fetch_frame("t", 0, 0))).records, "");
  EXPECT_EQ(parse_fetch(ok(fetch_frame("t", 1, 6))).error, error::kOffsetOutOfRange);
  EXPECT_EQ(parse_fetch(ok(fetch_frame("t", 2, 0))).error, error::kUnknownTopicOrPartition);
  // HTTP consumers read the same records.
  auto read = broker_->consume("t", broker::ConsumeRequest{1, 0, 100, 1 << 20});
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->records.size(), 5u);
  EXPECT_EQ(read->records[4].offset, 4);
  EXPECT_EQ(read->records[4].message.value, "value 1");
  EXPECT_EQ(read->records[4].message.timestamp, 1'700'000'001'001);
}

TEST_F(KafkaServiceTest, ABadBatchIsRefusedAndNothingIsStored) {
  create_topic("t", 1);
  std::string bad = batch_of(2, 1'700'000'000'000);
  bad.back() ^= 1;
  EXPECT_EQ(produced(ok(produce_frame("t", 0, bad))).first, error::kCorruptMessage);
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 0);
  // acks=0 gets no response at all, but is stored.
  auto none = call(produce_frame("t", 0, batch_of(1, 1), 0));
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 1);
}

TEST_F(KafkaServiceTest, AFetchWaitsForAnAppendAndIsAnsweredWhenItComes) {
  create_topic("t", 1);
  asio::io_context io;
  std::optional<Result<Response>> fetched;
  const std::string request = fetch_frame("t", 0, 0, /*max_wait_ms=*/30'000);
  const auto start = std::chrono::steady_clock::now();
  Session consumer, producer;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    fetched.emplace(co_await service_->handle(
        consumer, {reinterpret_cast<const uint8_t*>(request.data()), request.size()}));
  }, asio::detached);
  const std::string produce = produce_frame("t", 0, batch_of(2, 5));
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    asio::steady_timer pause(io, std::chrono::milliseconds(200));
    co_await pause.async_wait(asio::use_awaitable);
    co_await service_->handle(producer, {reinterpret_cast<const uint8_t*>(produce.data()), produce.size()});
  }, asio::detached);
  io.run();
  // Answered by the append's wake-up, well before the 30 s the client allowed.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ASSERT_TRUE(fetched && fetched->is_ok());
  Fetched f = parse_fetch(***fetched);
  EXPECT_EQ(f.high_watermark, 2);
  EXPECT_FALSE(f.records.empty());
}

TEST_F(KafkaServiceTest, AnIdempotentProducersRetryIsAnsweredWithItsOffsetAndNotStoredTwice) {
  create_topic("t", 1);
  std::string init = ok(frame(ApiKey::kInitProducerId, 1, [](Writer& w) {
    w.nullable_string(std::nullopt);
    w.i32(60000);
  }));
  Reader r(init);
  r.i32();
  r.i32();
  ASSERT_EQ(r.i16(), error::kNone);
  const int64_t pid = r.i64();
  EXPECT_EQ(r.i16(), 0);  // epoch
  using Answer = std::pair<int16_t, int64_t>;
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(3, pid, 0, 0)))), Answer(0, 0));
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(2, pid, 0, 3)))), Answer(0, 3));
  // The first batch again (a retry after a lost answer): its offset, nothing stored.
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(3, pid, 0, 0)))), Answer(0, 0));
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 5);
  // A gap in the sequences, and an older epoch, are refused; nothing is stored.
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(1, pid, 0, 9)))).first,
            error::kOutOfOrderSequenceNumber);
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(1, pid, 1, 0)))), Answer(0, 5));
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(1, pid, 0, 5)))).first,
            error::kInvalidProducerEpoch);
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 6);

  // After a restart (a new service over the same logs), the retry is still recognised.
  service_ = std::make_unique<Service>(*broker_, ServiceOptions{});
  EXPECT_EQ(service_->recover_producers(), 3u);
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(1, pid, 1, 0)))), Answer(0, 5));
  EXPECT_EQ(produced(ok(produce_frame("t", 0, idempotent_batch(1, pid, 1, 1)))), Answer(0, 6));
  EXPECT_EQ(store_->find("t")->partition(0).next_offset(), 7);
}

TEST_F(KafkaServiceTest, ProducerIdsDifferAndATransactionalIdIsRefusedForGood) {
  auto init = [&](std::optional<std::string_view> transactional) {
    std::string response = ok(frame(ApiKey::kInitProducerId, 0, [&](Writer& w) {
      w.nullable_string(transactional);
      w.i32(60000);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    int16_t code = r.i16();
    return std::make_pair(code, r.i64());
  };
  auto a = init(std::nullopt), b = init(std::nullopt);
  EXPECT_EQ(a.first, error::kNone);
  EXPECT_NE(a.second, b.second);
  EXPECT_EQ(init("tx-1").first, error::kTransactionalIdAuthorizationFailed);
}

TEST_F(KafkaServiceTest, ListOffsetsFindsTheEarliestTheLatestAndByTime) {
  create_topic("t", 1);
  ok(produce_frame("t", 0, batch_of(3, 1000)));  // timestamps 1000-1002, offsets 0-2
  ok(produce_frame("t", 0, batch_of(3, 2000)));  // 2000-2002, offsets 3-5
  auto list = [&](int64_t timestamp) {
    std::string response = ok(frame(ApiKey::kListOffsets, 3, [&](Writer& w) {
      w.i32(-1);
      w.i8(0);
      w.array_length(1);
      w.string("t");
      w.array_length(1);
      w.i32(0);
      w.i64(timestamp);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    r.array_length();
    r.string();
    r.array_length();
    r.i32();
    EXPECT_EQ(r.i16(), error::kNone);
    r.i64();
    return r.i64();
  };
  EXPECT_EQ(list(-2), 0);
  EXPECT_EQ(list(-1), 6);
  EXPECT_EQ(list(1001), 1);
  EXPECT_EQ(list(1500), 3);
  EXPECT_EQ(list(2002), 5);
  EXPECT_EQ(list(9999), -1);  // nothing that late
}

TEST_F(KafkaServiceTest, CreateTopicsRefusesWhatOneBrokerCannotDo) {
  auto create = [&](const std::string& name, int32_t partitions, int16_t replication) {
    std::string response = ok(frame(ApiKey::kCreateTopics, 4, [&](Writer& w) {
      w.array_length(1);
      w.string(name);
      w.i32(partitions);
      w.i16(replication);
      w.array_length(0);
      w.array_length(0);
      w.i32(10000);
      w.boolean(false);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    r.array_length();
    r.string();
    int16_t code = r.i16();
    auto message = r.nullable_string();
    EXPECT_EQ(code == error::kNone, !message.has_value());
    return code;
  };
  EXPECT_EQ(create("four", 4, -1), error::kNone);
  EXPECT_EQ(store_->find("four")->partition_count(), 4u);
  EXPECT_EQ(create("four", 4, 1), error::kTopicAlreadyExists);
  EXPECT_EQ(create("r3", 1, 3), error::kInvalidReplicationFactor);
  EXPECT_EQ(create("zero", 0, 1), error::kInvalidPartitions);
  EXPECT_EQ(create("bad name", 1, 1), error::kInvalidTopic);
  EXPECT_EQ(store_->find("r3"), nullptr);

  std::string deleted = ok(frame(ApiKey::kDeleteTopics, 3, [](Writer& w) {
    w.array_length(2);
    w.string("four");
    w.string("never");
    w.i32(10000);
  }));
  Reader r(deleted);
  r.i32();
  r.i32();
  ASSERT_EQ(r.array_length(), 2);
  EXPECT_EQ(r.string(), "four");
  EXPECT_EQ(r.i16(), error::kNone);
  EXPECT_EQ(r.string(), "never");
  EXPECT_EQ(r.i16(), error::kUnknownTopicOrPartition);
  EXPECT_EQ(store_->find("four"), nullptr);
}

TEST_F(KafkaServiceTest, MetadataCreatesATopicOnlyWhenAllowed) {
  auto metadata = [&](const std::string& topic, bool allow) {
    std::string response = ok(frame(ApiKey::kMetadata, 4, [&](Writer& w) {
      w.array_length(1);
      w.string(topic);
      w.boolean(allow);
    }));
    Reader r(response);
    r.i32();
    r.i32();
    EXPECT_EQ(r.array_length(), 1);
    EXPECT_EQ(r.i32(), 0);
    EXPECT_EQ(r.string(), "127.0.0.1");
    EXPECT_EQ(r.i32(), 19093);
    r.nullable_string();
    EXPECT_EQ(r.nullable_string(), std::optional<std::string_view>("wasmq"));
    EXPECT_EQ(r.i32(), 0);
    EXPECT_EQ(r.array_length(), 1);
    int16_t code = r.i16();
    EXPECT_EQ(r.string(), topic);
    r.boolean();
    int32_t partitions = r.array_length();
    return std::make_pair(code, partitions);
  };
  using Answer = std::pair<int16_t, int32_t>;
  EXPECT_EQ(metadata("absent", false), Answer(error::kUnknownTopicOrPartition, 0));
  EXPECT_EQ(store_->find("absent"), nullptr);
  EXPECT_EQ(metadata("made", true), Answer(error::kNone, 1));
  EXPECT_NE(store_->find("made"), nullptr);
  EXPECT_EQ(metadata("no good", true).first, error::kInvalidTopic);
}


TEST_F(KafkaServiceTest, WithSecurityNothingButSaslIsServedBeforeAuthentication) {
  require_sasl();
  // Refused: the call fails (so the connection closes).
  auto refused = call(produce_frame("t", 0, batch_of(1, 5)));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("Produce before SASL authentication"), std::string::npos);
  EXPECT_EQ(store_->find("t"), nullptr);
  ASSERT_FALSE(audited_.empty());
  EXPECT_EQ(audited_.back(), "Produce|-||refused");
  // ApiVersions is answered.
  EXPECT_TRUE(call(frame(ApiKey::kApiVersions, 3, [](Writer& w) {
                w.compact_string("c");
                w.compact_string("1");
                w.empty_tagged_fields();
              })).is_ok());
}

TEST_F(KafkaServiceTest, SaslPlainChecksTheTokenAndClosesAfterAFailure) {
  require_sasl();
  EXPECT_EQ(sasl_login("\0app\0wrong-token"s), error::kSaslAuthenticationFailed);
  EXPECT_TRUE(session_.close_after_response);
  EXPECT_FALSE(session_.caller);
  EXPECT_EQ(audited_.back(), "SaslAuthenticate|-|user app|refused");
  // Another identity (authzid), or a malformed message, is refused too.
  for (const std::string& plain : {"boss\0app\0app-token"s, std::string("app-token"),
                                  "\0\0app-token"s, "\0app\0app-token\0x"s}) {
    session_ = Session{};
    EXPECT_EQ(sasl_login(plain), error::kSaslAuthenticationFailed) << plain;
  }
  session_ = Session{};
  EXPECT_EQ(sasl_login("app\0app\0app-token"s), error::kNone);
  ASSERT_TRUE(session_.caller);
  EXPECT_EQ(session_.caller->name, "app");
  EXPECT_FALSE(session_.close_after_response);
  // A second handshake on an authenticated connection is an illegal state.
  std::string again = ok(frame(ApiKey::kSaslHandshake, 1, [](Writer& w) { w.string("PLAIN"); }));
  Reader r(again);
  r.i32();
  EXPECT_EQ(r.i16(), error::kIllegalSaslState);
  EXPECT_TRUE(session_.close_after_response);
}

TEST_F(KafkaServiceTest, SaslHandshakeV0TakesTheTokenAsABareFrame) {
  require_sasl();
  std::string shake = ok(frame(ApiKey::kSaslHandshake, 0, [](Writer& w) { w.string("PLAIN"); }));
  ASSERT_EQ(session_.sasl, Session::Sasl::kRawToken);
  auto accepted = call("\0boss\0boss-token"s);
  ASSERT_TRUE(accepted.is_ok());
  ASSERT_TRUE(accepted->has_value());
  EXPECT_EQ(**accepted, "");  // an empty frame
  EXPECT_EQ(session_.sasl, Session::Sasl::kDone);

  session_ = Session{};
  ok(frame(ApiKey::kSaslHandshake, 0, [](Writer& w) { w.string("PLAIN"); }));
  EXPECT_FALSE(call("\0boss\0app-token"s).is_ok());
  // An unknown mechanism is named in the answer's list of what is offered.
  session_ = Session{};
  std::string scram = ok(frame(ApiKey::kSaslHandshake, 1, [](Writer& w) { w.string("SCRAM-SHA-256"); }));
  Reader r(scram);
  r.i32();
  EXPECT_EQ(r.i16(), error::kUnsupportedSaslMechanism);
  EXPECT_EQ(r.array_length(), 1);
  EXPECT_EQ(r.string(), "PLAIN");
  EXPECT_TRUE(session_.close_after_response);
}

TEST_F(KafkaServiceTest, ARoleWithoutTheRightIsRefusedPerTopicAndAudited) {
  require_sasl();
  ASSERT_EQ(sasl_login("\0boss\0boss-token"s), error::kNone);
  create_topic("t", 1);
  const Session boss = session_;
  session_ = Session{};
  ASSERT_EQ(sasl_login("\0app\0app-token"s), error::kNone);
  // The producer may produce, not delete, not consume, not join groups.
  EXPECT_EQ(produced(ok(produce_frame("t", 0, batch_of(2, 5)))).first, error::kNone);
  EXPECT_EQ(delete_topic("t"), error::kTopicAuthorizationFailed);
  EXPECT_NE(store_->find("t"), nullptr);
  EXPECT_EQ(audited_.back(), "DeleteTopics|app|topic t|refused");
  EXPECT_EQ(parse_fetch(ok(fetch_frame("t", 0, 0))).error, error::kTopicAuthorizationFailed);
  std::string find = ok(frame(ApiKey::kFindCoordinator, 1, [](Writer& w) {
    w.string("g");
    w.i8(0);
  }));
  Reader r(find);
  r.i32();
  r.i32();
  EXPECT_EQ(r.i16(), error::kGroupAuthorizationFailed);
  // The admin may delete; the deletion is audited.
  session_ = boss;
  EXPECT_EQ(delete_topic("t"), error::kNone);
  EXPECT_EQ(audited_.back(), "DeleteTopics|boss|topic t|ok");
  EXPECT_EQ(store_->find("t"), nullptr);
}

TEST_F(KafkaServiceTest, DescribeConfigsNamesWhatATopicAndTheBrokerAreConfiguredWith) {
  create_topic("t", 1);
  std::string response = ok(frame(ApiKey::kDescribeConfigs, 1, [](Writer& w) {
    w.array_length(4);
    w.i8(2);
    w.string("t");
    w.i32(-1);  // every config
    w.i8(2);
    w.string("absent");
    w.i32(-1);
    w.i8(4);
    w.string("0");
    w.array_length(1);
    w.string("num.partitions");
    w.i8(7);
    w.string("x");
    w.i32(-1);
    w.boolean(false);
  }));
  Reader r(response);
  EXPECT_EQ(r.i32(), 42);
  r.i32();
  ASSERT_EQ(r.array_length(), 4);
  std::map<std::string, std::string> topic;
  std::vector<int16_t> codes;
  std::string broker_partitions;
  for (int i = 0; i < 4; ++i) {
    codes.push_back(r.i16());
    r.nullable_string();
    r.i8();
    r.string();
    int32_t n = r.array_length();
    for (int32_t k = 0; k < n; ++k) {
      std::string name(r.string());
      std::string value(r.nullable_string().value_or(""));
      r.boolean();  // read only
      r.i8();       // source
      r.boolean();  // sensitive
      EXPECT_EQ(r.array_length(), 0);  // no synonyms asked for
      if (i == 0) topic[name] = value;
      if (i == 2 && name == "num.partitions") broker_partitions = value;
    }
  }
  EXPECT_TRUE(r.ok() && r.remaining() == 0) << r.error();
  EXPECT_EQ(codes, (std::vector<int16_t>{error::kNone, error::kUnknownTopicOrPartition, error::kNone,
                                         error::kInvalidRequest}));
  EXPECT_EQ(topic["retention.ms"], std::to_string(options_.log.retention_ms));
  EXPECT_EQ(topic["segment.bytes"], std::to_string(options_.log.segment_bytes));
  EXPECT_EQ(topic["cleanup.policy"], "delete");
  EXPECT_EQ(broker_partitions, std::to_string(options_.default_partitions));
}

}  // namespace
}  // namespace wasmq::kafka
