#include "storage/topic_store.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace wasmq::storage {
namespace {

namespace fs = std::filesystem;

class TopicStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = testing::test_temp_dir("wasmq-store");
    fs::remove_all(options_.data_dir);
  }
  void TearDown() override { fs::remove_all(options_.data_dir); }

  std::unique_ptr<TopicStore> open(std::vector<std::string>* repairs = nullptr) {
    auto store = TopicStore::open(options_, repairs);
    EXPECT_TRUE(store.is_ok()) << store.status().message();
    return store.is_ok() ? std::move(*store) : nullptr;
  }

  static Message msg(std::string key, std::string value) {
    Message m;
    m.key = std::move(key);
    m.value = std::move(value);
    m.timestamp = 1;
    return m;
  }

  StoreOptions options_;
};

TEST_F(TopicStoreTest, CreatesListsAndPersistsTopics) {
  {
    auto store = open();
    TopicSettings settings;
    settings.name = "raw-events";
    settings.partitions = 3;
    settings.retention_ms = 1000;
    auto topic = store->create(settings);
    ASSERT_TRUE(topic.is_ok()) << topic.status().message();
    EXPECT_EQ((*topic)->partition_count(), 3u);
    Message m = msg("k", "v");
    ASSERT_TRUE((*topic)->partition(2).append(std::span<const Message>(&m, 1)).is_ok());
    ASSERT_TRUE(store->find_or_create("auto.created").is_ok());
  }
  auto store = open();
  auto topics = store->list();
  ASSERT_EQ(topics.size(), 2u);
  auto topic = store->find("raw-events");
  ASSERT_TRUE(topic);
  EXPECT_EQ(topic->partition_count(), 3u);
  EXPECT_EQ(topic->settings().retention_ms, 1000);
  EXPECT_EQ(topic->partition(2).next_offset(), 1);
  EXPECT_EQ(store->find("auto.created")->partition_count(), options_.default_partitions);
}

TEST_F(TopicStoreTest, RefusesBadNamesDuplicatesAndCounts) {
  auto store = open();
  for (const char* bad : {"", ".", "..", "has space", "slash/no", "ü"}) {
    TopicSettings s;
    s.name = bad;
    auto r = store->create(s);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  TopicSettings long_name;
  long_name.name = std::string(250, 'a');
  EXPECT_FALSE(store->create(long_name).is_ok());
  long_name.name = std::string(249, 'a');
  EXPECT_TRUE(store->create(long_name).is_ok());

  TopicSettings s;
  s.name = "t";
  ASSERT_TRUE(store->create(s).is_ok());
  auto again = store->create(s);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);

  TopicSettings too_many;
  too_many.name = "wide";
  too_many.partitions = options_.max_partitions + 1;
  EXPECT_FALSE(store->create(too_many).is_ok());
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / "wide"));  // nothing left behind
}

TEST_F(TopicStoreTest, RemovesTopicsAndTheirData) {
  auto store = open();
  TopicSettings s;
  s.name = "gone";
  auto topic = store->create(s);
  ASSERT_TRUE(topic.is_ok());
  Message m = msg("k", "v");
  ASSERT_TRUE((*topic)->partition(0).append(std::span<const Message>(&m, 1)).is_ok());
  ASSERT_TRUE(store->remove("gone").is_ok());
  EXPECT_FALSE(store->find("gone"));
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / "gone"));
  EXPECT_EQ(store->remove("gone").code(), StatusCode::kNotFound);
  // A holder of the topic can still read what it had.
  EXPECT_EQ((*topic)->partition(0).read(0, 10, 1 << 20)->records.size(), 1u);
  // The name is free again, empty.
  auto fresh = store->create(s);
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_EQ((*fresh)->partition(0).next_offset(), 0);
}

TEST_F(TopicStoreTest, CleansUpAnInterruptedRemoval) {
  fs::create_directories(options_.data_dir / "topics" / ".deleted-old-123" / "0");
  std::ofstream(options_.data_dir / "topics" / ".deleted-old-123" / "0" / "x.log") << "data";
  auto store = open();
  EXPECT_TRUE(store->list().empty());
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / ".deleted-old-123"));
}

TEST_F(TopicStoreTest, KeyedMessagesStickToOnePartitionAndUnkeyedSpread) {
  auto store = open();
  TopicSettings s;
  s.name = "spread";
  s.partitions = 4;
  auto topic = *store->create(s);
  uint32_t p = topic->choose_partition(std::string("user-42"));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(topic->choose_partition(std::string("user-42")), p);
  std::set<uint32_t> seen;
  for (int i = 0; i < 8; ++i) seen.insert(topic->choose_partition(std::nullopt));
  EXPECT_EQ(seen.size(), 4u);
}

TEST_F(TopicStoreTest, ConcurrentAutoCreateMakesOneTopic) {
  auto store = open();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto topic = store->find_or_create("racy");
      if (!topic.is_ok()) ++failures;
      Message m = msg("k", "v");
      if (!(*topic)->partition(0).append(std::span<const Message>(&m, 1)).is_ok()) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_EQ(store->find("racy")->partition(0).next_offset(), 8);
}

}  // namespace
}  // namespace wasmq::storage
