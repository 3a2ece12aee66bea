#include "broker/broker.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <map>
#include <filesystem>
#include <thread>

namespace wasmq::broker {
namespace {

namespace fs = std::filesystem;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = testing::test_temp_dir("wasmq-broker");
    fs::remove_all(options_.data_dir);
    store_ = std::move(*storage::TopicStore::open(options_, nullptr));
    broker_ = std::make_unique<Broker>(*store_, BrokerOptions{});
  }
  void TearDown() override {
    broker_.reset();
    store_.reset();
    fs::remove_all(options_.data_dir);
  }

  static ProduceRecord record(std::optional<std::string> key, std::string value,
                              std::optional<uint32_t> partition = std::nullopt) {
    ProduceRecord r;
    r.message.key = std::move(key);
    r.message.value = std::move(value);
    r.message.timestamp = 1763800000000;
    r.partition = partition;
    return r;
  }

  storage::StoreOptions options_;
  std::unique_ptr<storage::TopicStore> store_;
  std::unique_ptr<Broker> broker_;
};

// One way through: the thread that produces (an I/O thread) queues the writes and goes on; the
// appender writes them and answers, from its own thread.
TEST_F(BrokerTest, TheProducingThreadDoesNotWriteAndTheAppenderAnswers) {
  std::promise<std::pair<std::thread::id, Result<std::vector<ProduceOutcome>>>> answered;
  auto answer = answered.get_future();
  auto immediate = broker_->produce("t", {record("k", "a"), record("k", "b")},
                                    [&](Result<std::vector<ProduceOutcome>> outcomes) {
                                      answered.set_value({std::this_thread::get_id(),
                                                          std::move(outcomes)});
                                    });
  EXPECT_FALSE(immediate.has_value());
  auto [thread, outcomes] = answer.get();
  EXPECT_NE(thread, std::this_thread::get_id());
  ASSERT_TRUE(outcomes.is_ok()) << outcomes.status().message();
  ASSERT_EQ(outcomes->size(), 2u);
  EXPECT_EQ((*outcomes)[1].records.at(0).offset, 1);
  // A refusal is answered at once, on the calling thread, and creates nothing.
  auto refused = broker_->produce("bad name", {record("k", "v")},
                                  [](Result<std::vector<ProduceOutcome>>) { FAIL(); });
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->is_ok());
}

// Holds every disk thread of `broker` until release() (or destruction), so that a test can see
// what the calling thread does without them.
class DiskThreadsHeld {
 public:
  explicit DiskThreadsHeld(Broker& broker) {
    for (int i = 0; i < 8; ++i) {  // more than the pool has: all of them are taken
      broker.disk_tasks().post([opened = opened_] { opened.wait(); });
    }
  }
  ~DiskThreadsHeld() { release(); }
  void release() {
    if (!released_) gate_.set_value();
    released_ = true;
  }

 private:
  std::promise<void> gate_;
  std::shared_future<void> opened_ = gate_.get_future().share();
  bool released_ = false;
};

// Creating a topic is disk work (directories, files, fsync): a produce request for a new topic
// does not create it on the calling thread (an I/O thread), but on a disk thread, and is
// answered from there on.
TEST_F(BrokerTest, ANewTopicIsCreatedOnADiskThreadNotTheCallingOne) {
  std::promise<Result<std::vector<ProduceOutcome>>> answered;
  auto answer = answered.get_future();
  {
    DiskThreadsHeld held(*broker_);
    auto immediate = broker_->produce("fresh", {record("k", "a")},
                                      [&](Result<std::vector<ProduceOutcome>> outcomes) {
                                        answered.set_value(std::move(outcomes));
                                      });
    EXPECT_FALSE(immediate.has_value());
    // The calling thread is back and the topic is not there yet: its creation waits for a
    // disk thread.
    EXPECT_EQ(store_->find("fresh"), nullptr);
    EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
    held.release();
  }
  auto outcomes = answer.get();
  ASSERT_TRUE(outcomes.is_ok()) << outcomes.status().message();
  EXPECT_EQ((*outcomes)[0].kind, ProduceOutcome::Kind::kStored);
  ASSERT_NE(store_->find("fresh"), nullptr);
  EXPECT_EQ(store_->find("fresh")->partition(0).next_offset(), 1);
  // A bad partition for the topic created meanwhile is answered through the callback.
  std::promise<Result<std::vector<ProduceOutcome>>> refused;
  auto refusal = refused.get_future();
  auto immediate = broker_->produce("fresh2", {record("k", "a", 7)},
                                    [&](Result<std::vector<ProduceOutcome>> outcomes) {
                                      refused.set_value(std::move(outcomes));
                                    });
  EXPECT_FALSE(immediate.has_value());
  auto refusal_outcome = refusal.get();
  ASSERT_FALSE(refusal_outcome.is_ok());
  EXPECT_EQ(refusal_outcome.status().field(), "messages[0].partition");
}

// A consumer's read runs on a disk thread too, and is answered from there.
TEST_F(BrokerTest, AConsumersReadRunsOnADiskThread) {
  ASSERT_TRUE(broker_->produce("read", {record("k", "a"), record("k", "b")}).is_ok());
  std::promise<std::pair<std::thread::id, Result<storage::ReadResult>>> read;
  auto result = read.get_future();
  {
    DiskThreadsHeld held(*broker_);
    ConsumeRequest request;
    broker_->consume("read", request, [&](Result<storage::ReadResult> r) {
      read.set_value({std::this_thread::get_id(), std::move(r)});
    });
    EXPECT_EQ(result.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  }
  auto [thread, records] = result.get();
  EXPECT_NE(thread, std::this_thread::get_id());
  ASSERT_TRUE(records.is_ok()) << records.status().message();
  ASSERT_EQ(records->records.size(), 2u);
  EXPECT_EQ(records->records[1].message.value, "b");
}

// Many threads producing to a few partitions: every record stored once, each partition's
// offsets contiguous and each producer's records in its order.
TEST_F(BrokerTest, ConcurrentProducersKeepEachPartitionInOrder) {
  constexpr int kThreads = 4, kRequests = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        const std::string key = "producer-" + std::to_string(t);
        auto out = broker_->produce("many", {record(key, std::to_string(i)),
                                             record(key, std::to_string(i) + "b")});
        ASSERT_TRUE(out.is_ok()) << out.status().message();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto topic = store_->find("many");
  ASSERT_TRUE(topic);
  auto read = topic->partition(0).read(0, 100000, 1 << 30);
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->records.size(), size_t{kThreads * kRequests * 2});
  std::map<std::string, int> next;
  for (size_t i = 0; i < read->records.size(); ++i) {
    const auto& r = read->records[i];
    EXPECT_EQ(r.offset, static_cast<int64_t>(i));
    const std::string& key = *r.message.key;
    const std::string expected = std::to_string(next[key] / 2) + (next[key] % 2 ? "b" : "");
    EXPECT_EQ(r.message.value, expected) << key;
    ++next[key];
  }
}

TEST_F(BrokerTest, ProducesAndConsumesWithAutoCreate) {
  auto out = broker_->produce("raw-events", {record("sensor-001", "a"), record(std::nullopt, "b")});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].records.at(0).offset, 0);
  EXPECT_EQ((*out)[1].records.at(0).offset, 1);
  EXPECT_EQ((*out)[1].records.at(0).topic(), "raw-events");
  auto read = broker_->consume("raw-events", {0, 0, 10, 1 << 20});
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->records.size(), 2u);
  EXPECT_EQ(read->records[0].message.key, "sensor-001");
  EXPECT_EQ(read->records[1].message.value, "b");
  EXPECT_EQ(read->high_watermark, 2);
}

TEST_F(BrokerTest, BadRequestsStoreNothing) {
  storage::TopicSettings s;
  s.name = "two";
  s.partitions = 2;
  ASSERT_TRUE(store_->create(s).is_ok());
  auto bad_partition = broker_->produce("two", {record("k", "ok", 1), record("k", "bad", 2)});
  ASSERT_FALSE(bad_partition.is_ok());
  EXPECT_NE(bad_partition.status().message().find("messages[1].partition: 2 is out of range"),
            std::string::npos) << bad_partition.status().message();
  EXPECT_EQ(store_->find("two")->partition(1).next_offset(), 0);

  auto bad_name = broker_->produce("bad name", {record("k", "v")});
  ASSERT_FALSE(bad_name.is_ok());
  EXPECT_EQ(bad_name.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->find("bad name"));

  Broker strict(*store_, BrokerOptions{.auto_create_topics = false});
  auto missing = strict.produce("nope", {record("k", "v")});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(store_->find("nope"));
}

TEST_F(BrokerTest, ExplicitAndKeyedPartitions) {
  storage::TopicSettings s;
  s.name = "four";
  s.partitions = 4;
  ASSERT_TRUE(store_->create(s).is_ok());
  auto out = broker_->produce("four", {record("user-1", "a"), record("user-1", "b"),
                                       record(std::nullopt, "c", 3)});
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ((*out)[0].records[0].partition, (*out)[1].records[0].partition);
  EXPECT_EQ((*out)[1].records[0].offset, (*out)[0].records[0].offset + 1);
  EXPECT_EQ((*out)[2].records[0].partition, 3u);
  auto missing = broker_->consume("four", {9, 0, 10, 1 << 20});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto range = broker_->consume("four", {3, 5, 10, 1 << 20});
  EXPECT_EQ(range.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(range.status().message().find("out of range [0, 1]"), std::string::npos);
}

TEST_F(BrokerTest, WaitersWakeOnAppendAndCanBeCancelled) {
  ASSERT_TRUE(broker_->produce("t", {record("k", "first")}).is_ok());
  std::atomic<int> woke{0};
  // Data already there: runs at once.
  EXPECT_EQ(broker_->wait_for_data("t", 0, 0, [&] { ++woke; }), 0u);
  EXPECT_EQ(woke.load(), 1);
  uint64_t id = broker_->wait_for_data("t", 0, 1, [&] { ++woke; });
  ASSERT_NE(id, 0u);
  uint64_t cancelled = broker_->wait_for_data("t", 0, 1, [&] { woke += 100; });
  EXPECT_TRUE(broker_->cancel_wait(cancelled));
  std::thread producer([&] { ASSERT_TRUE(broker_->produce("t", {record("k", "second")}).is_ok()); });
  producer.join();
  EXPECT_EQ(woke.load(), 2);
  EXPECT_FALSE(broker_->cancel_wait(id));  // already ran
}

// A large request is stored as bounded batches, so a read at any offset decodes a bounded
// amount: a read with max_bytes = 1 returns exactly the one batch holding its offset.
TEST_F(BrokerTest, SplitsLargeProducesIntoBoundedBatches) {
  std::vector<ProduceRecord> records;
  for (int i = 0; i < 2500; ++i) records.push_back(record(std::nullopt, std::to_string(i)));
  auto out = broker_->produce("big", std::move(records));
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out->back().records.at(0).offset, 2499);
  auto first = broker_->consume("big", {0, 0, 100'000, 1});
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first->records.size(), kMaxAppendRecords);
  auto last = broker_->consume("big", {0, 2400, 100'000, 1});
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(last->records.size(), 100u);  // the tail of the third batch (2000..2499)
  EXPECT_EQ(last->records.back().message.value, "2499");

  // By bytes: 5 messages of 300 KB make batches of 3 and 2 (1 MiB each at most).
  std::vector<ProduceRecord> large;
  for (int i = 0; i < 5; ++i) large.push_back(record(std::nullopt, std::string(300'000, 'a' + i)));
  ASSERT_TRUE(broker_->produce("large", std::move(large)).is_ok());
  auto batch = broker_->consume("large", {0, 0, 100, 1});
  ASSERT_TRUE(batch.is_ok());
  EXPECT_EQ(batch->records.size(), 3u);
  // A single message above the byte bound is a batch of its own.
  std::vector<ProduceRecord> huge;
  huge.push_back(record(std::nullopt, std::string(2 << 20, 'h')));
  huge.push_back(record(std::nullopt, "after"));
  ASSERT_TRUE(broker_->produce("huge", std::move(huge)).is_ok());
  auto alone = broker_->consume("huge", {0, 0, 100, 1});
  ASSERT_TRUE(alone.is_ok());
  EXPECT_EQ(alone->records.size(), 1u);
}

// Views into a request's bytes (the data API's produce): for an existing topic without
// pipelines they are encoded before produce() returns, so the bytes may go at once; keys choose
// partitions as for Messages, explicit partitions are checked, and batches keep their bounds.
TEST_F(BrokerTest, ViewsAreEncodedBeforeProduceReturns) {
  storage::TopicSettings settings;
  settings.name = "views";
  settings.partitions = 3;
  ASSERT_TRUE(store_->create(settings).is_ok());
  auto produce_views = [&](const std::string& topic, std::vector<std::string>* bytes,
                           std::vector<std::optional<uint32_t>> partitions, bool keyed) {
    std::vector<HeaderView> headers{{"h", "header-value-longer-than-sso"}};
    std::vector<MessageView> views;
    for (const std::string& b : *bytes) {
      MessageView v;
      if (keyed) v.key = std::string_view(b).substr(0, 2);
      v.value = b;
      v.headers = headers;
      v.timestamp = 1763800000000;
      views.push_back(v);
    }
    std::promise<Result<std::vector<ProduceOutcome>>> answered;
    auto answer = answered.get_future();
    auto immediate = broker_->produce(topic, views, partitions,
                                      [&](Result<std::vector<ProduceOutcome>> outcomes) {
                                        answered.set_value(std::move(outcomes));
                                      });
    // The bytes are gone as soon as the call is back.
    for (std::string& b : *bytes) std::fill(b.begin(), b.end(), 'X');
    headers[0] = {"gone", "gone"};
    if (immediate) return std::move(*immediate);
    return answer.get();
  };
  std::vector<std::string> bytes;
  for (int i = 0; i < 30; ++i) bytes.push_back("k" + std::to_string(i % 3) + "-value-" + std::to_string(i));
  auto keyed = produce_views("views", &bytes, std::vector<std::optional<uint32_t>>(30), true);
  ASSERT_TRUE(keyed.is_ok()) << keyed.status().message();
  ASSERT_EQ(keyed->size(), 30u);
  std::map<uint32_t, int64_t> next;  // per partition, the next offset expected
  for (int i = 0; i < 30; ++i) {
    const StoredRecord& r = (*keyed)[static_cast<size_t>(i)].records.at(0);
    const std::string key = "k" + std::to_string(i % 3);
    EXPECT_EQ(r.partition, store_->find("views")->choose_partition(key));
    EXPECT_EQ(r.offset, next[r.partition]++);
    auto read = broker_->consume("views", {r.partition, r.offset, 1, 1 << 20});
    ASSERT_TRUE(read.is_ok());
    const Message& m = read->records.at(0).message;
    EXPECT_EQ(m.value, key + "-value-" + std::to_string(i));
    EXPECT_EQ(m.key, key);
    ASSERT_EQ(m.headers.size(), 1u);
    EXPECT_EQ(m.headers[0], Header("h", "header-value-longer-than-sso"));
  }
  // An explicit partition beyond the topic's is refused, and nothing is stored.
  std::vector<std::string> two{"a", "b"};
  auto refused = produce_views("views", &two, {std::nullopt, 3}, false);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().field(), "messages[1].partition");
  EXPECT_EQ(store_->find("views")->partition(0).next_offset() +
                store_->find("views")->partition(1).next_offset() +
                store_->find("views")->partition(2).next_offset(),
            30);
  // By bytes: 5 views of 300 KB make batches of 3 and 2, as Messages do.
  std::vector<std::string> large;
  for (int i = 0; i < 5; ++i) large.push_back(std::string(300'000, static_cast<char>('a' + i)));
  ASSERT_TRUE(produce_views("views", &large, std::vector<std::optional<uint32_t>>(5, 1u), false)
                  .is_ok());
  const int64_t at = next[1];  // after partition 1's keyed messages
  auto batch = broker_->consume("views", {1, at, 100, 1});
  ASSERT_TRUE(batch.is_ok());
  ASSERT_EQ(batch->records.size(), 3u);
  EXPECT_EQ(batch->records[2].message.value, std::string(300'000, 'c'));
  // A topic to create: the views are copied before the call is back, and stored from a disk
  // thread.
  std::vector<std::string> fresh{"one", "two"};
  auto created = produce_views("views-new", &fresh, {std::nullopt, std::nullopt}, false);
  ASSERT_TRUE(created.is_ok()) << created.status().message();
  auto read = broker_->consume("views-new", {0, 0, 10, 1 << 20});
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->records.size(), 2u);
  EXPECT_EQ(read->records[1].message.value, "two");
}

}  // namespace
}  // namespace wasmq::broker
