#include "storage/topic_store.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
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

  static std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  StoreOptions options_;
};

size_t open_descriptors() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

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
  for (const char* bad : {"", ".", "..", ".x", "has space", "slash/no", "ü"}) {
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
  // A holder of the topic is told it is gone, for reads and appends alike.
  auto read = (*topic)->partition(0).read(0, 10, 1 << 20);
  ASSERT_FALSE(read.is_ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  auto append = (*topic)->partition(0).append(std::span<const Message>(&m, 1));
  ASSERT_FALSE(append.is_ok());
  EXPECT_EQ(append.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(options_.data_dir / "trash"));
  // The name is free again, empty.
  auto fresh = store->create(s);
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_EQ((*fresh)->partition(0).next_offset(), 0);
}

TEST_F(TopicStoreTest, CleansUpAnInterruptedRemoval) {
  // In trash/, where removals happen now.
  fs::create_directories(options_.data_dir / "trash" / "old-123-0" / "0");
  std::ofstream(options_.data_dir / "trash" / "old-123-0" / "0" / "x.log") << "data";
  // And the tombstones of older versions, in topics/: one whose topic.json is gone already, one
  // whose topic.json names the removed topic.
  fs::create_directories(options_.data_dir / "topics" / ".deleted-old-123" / "0");
  std::ofstream(options_.data_dir / "topics" / ".deleted-old-123" / "0" / "x.log") << "data";
  fs::create_directories(options_.data_dir / "topics" / ".deleted-older-456" / "0");
  std::ofstream(options_.data_dir / "topics" / ".deleted-older-456" / "topic.json")
      << R"({"name":"older","partitions":1})";
  std::vector<std::string> repairs;
  auto store = open(&repairs);
  EXPECT_TRUE(store->list().empty());
  EXPECT_TRUE(store->unloaded().empty());
  EXPECT_FALSE(fs::exists(options_.data_dir / "trash"));
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / ".deleted-old-123"));
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / ".deleted-older-456"));
  EXPECT_EQ(repairs.size(), 3u);  // each said in the log
}

// Names with a leading '.' are storage's: a producer cannot create ".deleted-victim" (whose
// data an older version deleted at the next start), and nothing is left on disk.
TEST_F(TopicStoreTest, RefusesNamesStorageReserves) {
  auto store = open();
  for (const char* reserved : {".deleted-victim", ".deleted-x-1", ".hidden", ".", ".."}) {
    TopicSettings s;
    s.name = reserved;
    auto created = store->create(s);
    ASSERT_FALSE(created.is_ok()) << reserved;
    EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);
    auto auto_created = store->find_or_create(reserved);
    ASSERT_FALSE(auto_created.is_ok()) << reserved;
    EXPECT_EQ(auto_created.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_NE(validate_topic_name(".deleted-victim").message().find("cannot start with '.'"),
            std::string::npos);
  EXPECT_TRUE(fs::is_empty(options_.data_dir / "topics"));
  EXPECT_TRUE(validate_topic_name("a.b..c").is_ok());
}

// A topic that an older version let a producer call ".deleted-victim" holds acknowledged data:
// it is kept and reported, never taken for a tombstone.
TEST_F(TopicStoreTest, KeepsAnOlderVersionsTopicWithAReservedName) {
  for (const char* name : {".deleted-victim", ".deleted-victim-123"}) {
    SCOPED_TRACE(name);
    const fs::path dir = options_.data_dir / "topics" / name;
    fs::create_directories(dir / "0");
    std::ofstream(dir / "topic.json") << R"({"name":")" << name << R"(","partitions":1})";
    std::ofstream(dir / "0" / "00000000000000000000.log") << "acknowledged bytes";
  }
  auto store = open();
  EXPECT_TRUE(store->list().empty());
  ASSERT_EQ(store->unloaded().size(), 2u);
  for (const auto& u : store->unloaded()) {
    EXPECT_NE(u.reason.find("reserved"), std::string::npos) << u.reason;
    EXPECT_TRUE(fs::exists(options_.data_dir / "topics" / u.directory / "0" / "00000000000000000000.log"));
  }
}

// One damaged topic does not stop the others: it is skipped, reported, and left untouched.
TEST_F(TopicStoreTest, SkipsAndReportsTopicsThatCannotBeLoaded) {
  {
    auto store = open();
    for (const char* name : {"good", "bad", "empty"}) {
      TopicSettings s;
      s.name = name;
      auto topic = store->create(s);
      ASSERT_TRUE(topic.is_ok());
      Message m = msg("k", name);
      ASSERT_TRUE((*topic)->partition(0).append(std::span<const Message>(&m, 1)).is_ok());
    }
  }
  const fs::path topics = options_.data_dir / "topics";
  std::ofstream(topics / "bad" / "topic.json", std::ios::trunc) << R"({"name": "bad", "partitions": 1)";
  std::ofstream(topics / "empty" / "topic.json", std::ios::trunc);
  fs::create_directories(topics / "zzz");
  std::ofstream(topics / "zzz" / "topic.json") << R"({"name":"other","partitions":1})";

  std::vector<std::string> repairs;
  auto store = open(&repairs);
  ASSERT_TRUE(store);
  ASSERT_EQ(store->list().size(), 1u);
  auto good = store->find("good");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->partition(0).read(0, 10, 1 << 20)->records.at(0).message.value, "good");
  std::map<std::string, std::string> unloaded;
  for (const auto& u : store->unloaded()) unloaded[u.directory] = u.reason;
  ASSERT_EQ(unloaded.size(), 3u);
  EXPECT_NE(unloaded["bad"].find("not a JSON object"), std::string::npos) << unloaded["bad"];
  EXPECT_NE(unloaded["zzz"].find("names topic \"other\""), std::string::npos) << unloaded["zzz"];
  for (const auto& [dir, reason] : unloaded) {
    EXPECT_EQ(reason.find(options_.data_dir.string()), std::string::npos) << reason;
  }
  // Nothing deleted, nothing adopted: creating a skipped topic's name is refused.
  EXPECT_TRUE(fs::exists(topics / "bad" / "0" / "00000000000000000000.log"));
  EXPECT_GT(fs::file_size(topics / "bad" / "0" / "00000000000000000000.log"), 0u);
  auto again = store->find_or_create("bad");
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kConflict);
  EXPECT_EQ(slurp(topics / "bad" / "topic.json"), R"({"name": "bad", "partitions": 1)");
  // Even when it holds no record: an unloaded directory is the operator's to fix.
  fs::resize_file(topics / "empty" / "0" / "00000000000000000000.log", 0);
  EXPECT_EQ(store->find_or_create("empty").status().code(), StatusCode::kConflict);
  EXPECT_TRUE(fs::exists(topics / "empty" / "topic.json"));
}

// The topic cap refuses creation, explicit or automatic, with an error naming the cap, and
// changes nothing.
TEST_F(TopicStoreTest, RefusesTopicsBeyondMaxTopics) {
  options_.max_topics = 3;
  auto store = open();
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(store->find_or_create(name).is_ok());
  TopicSettings s;
  s.name = "d";
  for (auto created : {store->create(s), store->find_or_create("d")}) {
    ASSERT_FALSE(created.is_ok());
    EXPECT_EQ(created.status().code(), StatusCode::kConflict);
    EXPECT_NE(created.status().message().find("broker.max_topics = 3"), std::string::npos)
        << created.status().message();
  }
  EXPECT_FALSE(fs::exists(options_.data_dir / "topics" / "d"));
  EXPECT_EQ(store->list().size(), 3u);
  ASSERT_TRUE(store->remove("a").is_ok());
  EXPECT_TRUE(store->create(s).is_ok());
}

// Descriptors follow use, not the number of topics: after a restart an idle store holds none
// for its partitions, and reading and writing all of them stays within max_open_files.
TEST_F(TopicStoreTest, OpenFilesFollowUseNotTopicCount) {
  options_.max_open_files = 16;
  const size_t before = open_descriptors();
  constexpr int kTopics = 120;
  {
    auto store = open();
    for (int i = 0; i < kTopics; ++i) {
      TopicSettings s;
      s.name = "tp" + std::to_string(i);
      s.partitions = 2;
      auto topic = store->create(s);
      ASSERT_TRUE(topic.is_ok()) << topic.status().message();
      Message m = msg("k", s.name);
      ASSERT_TRUE((*topic)->partition(i % 2).append(std::span<const Message>(&m, 1)).is_ok());
    }
    // + the background thread's nothing, + a few for the store itself.
    EXPECT_LE(open_descriptors(), before + 16 + 4);
  }
  auto store = open();
  ASSERT_EQ(store->list().size(), static_cast<size_t>(kTopics));
  EXPECT_LE(open_descriptors(), before + 4);  // idle partitions hold nothing
  for (const auto& topic : store->list()) {
    for (uint32_t p = 0; p < 2; ++p) {
      Message m = msg("k", topic->name());
      ASSERT_TRUE(topic->partition(p).append(std::span<const Message>(&m, 1)).is_ok());
      auto read = topic->partition(p).read(0, 10, 1 << 20);
      ASSERT_TRUE(read.is_ok()) << read.status().message();
      EXPECT_FALSE(read->records.empty());
    }
    EXPECT_LE(open_descriptors(), before + 16 + 4);
  }
}

// The flush round visits the partitions written since the last one, not every partition.
TEST_F(TopicStoreTest, FlushVisitsOnlyPartitionsWithUnsyncedWrites) {
  options_.fsync_interval_ms = 3'600'000;  // the background thread stays out of the way
  auto store = open();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store->find_or_create("t" + std::to_string(i)).is_ok());
  EXPECT_EQ(store->flush_due(), 0u);
  Message m = msg("k", "v");
  for (const char* name : {"t7", "t30", "t7"}) {
    ASSERT_TRUE(store->find(name)->partition(0).append(std::span<const Message>(&m, 1)).is_ok());
  }
  EXPECT_EQ(store->flush_due(), 2u);
  EXPECT_EQ(store->flush_due(), 0u);
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

// Creations under way count against the cap: many threads creating distinct topics at once
// get exactly max_topics of them, and the refused leave no directory behind.
TEST_F(TopicStoreTest, ConcurrentCreationsStayWithinMaxTopics) {
  options_.max_topics = 5;
  auto store = open();
  constexpr int kThreads = 16;
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto topic = store->find_or_create("t" + std::to_string(t));
      if (topic.is_ok()) {
        ++created;
      } else if (topic.status().code() == StatusCode::kConflict) {
        ++refused;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(created.load(), 5);
  EXPECT_EQ(refused.load(), kThreads - 5);
  EXPECT_EQ(store->list().size(), 5u);
  size_t directories = 0;
  for (const auto& entry : fs::directory_iterator(options_.data_dir / "topics")) {
    (void)entry;
    ++directories;
  }
  EXPECT_EQ(directories, 5u);
}

// Creating and removing one name from many threads at once: each call sees a whole topic or
// none, and at the end the store and the directory agree.
TEST_F(TopicStoreTest, ConcurrentCreateAndRemoveOfOneNameAgreeWithTheDisk) {
  auto store = open();
  std::vector<std::thread> threads;
  std::atomic<int> unexpected{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        if ((t + i) % 2 == 0) {
          auto topic = store->find_or_create("flip");
          if (!topic.is_ok() || (*topic)->partition_count() != 1) ++unexpected;
        } else {
          Status s = store->remove("flip");
          if (!s.is_ok() && s.code() != StatusCode::kNotFound) ++unexpected;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(unexpected.load(), 0);
  const bool listed = store->find("flip") != nullptr;
  EXPECT_EQ(fs::exists(options_.data_dir / "topics" / "flip" / "topic.json"), listed);
  // And the store reopens to the same state.
  store.reset();
  store = open();
  EXPECT_EQ(store->find("flip") != nullptr, listed);
}

}  // namespace
}  // namespace wasmq::storage
