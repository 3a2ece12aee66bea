#include "storage/partition_log.h"
#include "temp_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace wasmq::storage {
namespace {

namespace fs = std::filesystem;

class PartitionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_temp_dir("wasmq-log");
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<PartitionLog> open(LogOptions options = {}, std::vector<std::string>* repairs = nullptr) {
    auto log = PartitionLog::open(dir_, options, repairs);
    EXPECT_TRUE(log.is_ok()) << log.status().message();
    return log.is_ok() ? std::move(*log) : nullptr;
  }

  static Message msg(int i, size_t value_size = 20) {
    Message m;
    m.key = "key-" + std::to_string(i);
    m.value = "value-" + std::to_string(i) + std::string(value_size, 'v');
    m.headers = {{"n", std::to_string(i)}};
    m.timestamp = 1'700'000'000'000 + i;
    return m;
  }

  static void append_n(PartitionLog& log, int from, int count, size_t value_size = 20) {
    for (int i = from; i < from + count; ++i) {
      Message m = msg(i, value_size);
      auto r = log.append(std::span<const Message>(&m, 1));
      ASSERT_TRUE(r.is_ok()) << r.status().message();
      ASSERT_EQ(r->base_offset, i);
    }
  }

  static std::vector<Record> read_all(const PartitionLog& log, int64_t from = 0) {
    std::vector<Record> all;
    int64_t offset = from;
    for (;;) {
      auto r = log.read(offset, 1000, 1 << 20);
      EXPECT_TRUE(r.is_ok()) << r.status().message();
      if (!r.is_ok() || r->records.empty()) break;
      for (auto& rec : r->records) all.push_back(std::move(rec));
      offset = r->next_offset;
    }
    return all;
  }

  std::vector<fs::path> files(const char* extension) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == extension) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

TEST_F(PartitionLogTest, AppendsAndReadsInOrder) {
  auto log = open();
  std::vector<Message> batch = {msg(0), msg(1), msg(2)};
  auto r = log->append(batch);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->base_offset, 0);
  EXPECT_EQ(r->last_offset, 2);
  append_n(*log, 3, 7);
  EXPECT_EQ(log->next_offset(), 10);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(all[i].offset, i);
    EXPECT_EQ(all[i].message, msg(i));
  }
  // From the middle of a batch.
  auto mid = log->read(1, 1, 1 << 20);
  ASSERT_TRUE(mid.is_ok());
  ASSERT_EQ(mid->records.size(), 1u);
  EXPECT_EQ(mid->records[0].offset, 1);
  EXPECT_EQ(mid->next_offset, 2);
  EXPECT_EQ(mid->high_watermark, 10);
}

TEST_F(PartitionLogTest, ReadRespectsLimitsAndRange) {
  auto log = open();
  append_n(*log, 0, 50, 100);
  auto few = log->read(0, 5, 1 << 20);
  ASSERT_TRUE(few.is_ok());
  EXPECT_EQ(few->records.size(), 5u);
  auto small = log->read(0, 1000, 300);
  ASSERT_TRUE(small.is_ok());
  EXPECT_GE(small->records.size(), 1u);
  EXPECT_LT(small->records.size(), 5u);
  auto at_end = log->read(50, 10, 1 << 20);
  ASSERT_TRUE(at_end.is_ok());
  EXPECT_TRUE(at_end->records.empty());
  auto past = log->read(51, 10, 1 << 20);
  ASSERT_FALSE(past.is_ok());
  EXPECT_EQ(past.status().code(), StatusCode::kNotFound);
  EXPECT_NE(past.status().message().find("out of range [0, 50]"), std::string::npos);
}

TEST_F(PartitionLogTest, RollsSegmentsAndReadsAcrossThem) {
  LogOptions options;
  options.segment_bytes = 4096;
  options.index_interval_bytes = 512;
  auto log = open(options);
  append_n(*log, 0, 200, 100);
  EXPECT_GT(log->segment_count(), 3u);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 200u);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(all[i].message, msg(i, 100));
  // Random access through the index.
  for (int i : {0, 37, 99, 150, 199}) {
    auto r = log->read(i, 1, 1 << 20);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->records.at(0).offset, i);
  }
  EXPECT_EQ(files(".log").front().filename(), "00000000000000000000.log");
}

TEST_F(PartitionLogTest, PersistsAcrossReopen) {
  LogOptions options;
  options.segment_bytes = 4096;
  {
    auto log = open(options);
    append_n(*log, 0, 100, 100);
  }
  std::vector<std::string> repairs;
  auto log = open(options, &repairs);
  EXPECT_TRUE(repairs.empty()) << repairs.front();
  EXPECT_EQ(log->next_offset(), 100);
  append_n(*log, 100, 10, 100);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 110u);
  EXPECT_EQ(all[105].message, msg(105, 100));
}

TEST_F(PartitionLogTest, RecoversTornTail) {
  {
    auto log = open();
    append_n(*log, 0, 20);
  }
  fs::path segment = files(".log").front();
  uint64_t size = fs::file_size(segment);
  fs::resize_file(segment, size - 7);  // the last batch loses its end
  std::vector<std::string> repairs;
  auto log = open({}, &repairs);
  ASSERT_EQ(repairs.size(), 1u);
  EXPECT_NE(repairs[0].find("torn or malformed batch"), std::string::npos) << repairs[0];
  EXPECT_EQ(log->next_offset(), 19);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 19u);
  EXPECT_EQ(all.back().message, msg(18));
  // The log goes on from the cut.
  append_n(*log, 19, 1);
  EXPECT_EQ(read_all(*log).size(), 20u);
}

TEST_F(PartitionLogTest, RecoversCorruptTail) {
  {
    auto log = open();
    append_n(*log, 0, 20);
  }
  fs::path segment = files(".log").front();
  uint64_t size = fs::file_size(segment);
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 10));
    f.put('#');  // inside the last batch's records: its CRC no longer matches
  }
  std::vector<std::string> repairs;
  auto log = open({}, &repairs);
  ASSERT_EQ(repairs.size(), 1u);
  EXPECT_NE(repairs[0].find("CRC mismatch"), std::string::npos) << repairs[0];
  EXPECT_EQ(read_all(*log).size(), 19u);
}

TEST_F(PartitionLogTest, RecoversGarbageAppendedAfterTheLastBatch) {
  {
    auto log = open();
    append_n(*log, 0, 5);
  }
  fs::path segment = files(".log").front();
  {
    std::ofstream f(segment, std::ios::app | std::ios::binary);
    f << std::string(100, '\0') << "garbage";
  }
  std::vector<std::string> repairs;
  auto log = open({}, &repairs);
  EXPECT_EQ(repairs.size(), 1u);
  EXPECT_EQ(read_all(*log).size(), 5u);
}

TEST_F(PartitionLogTest, RebuildsAMissingOrDamagedIndex) {
  LogOptions options;
  options.segment_bytes = 4096;
  options.index_interval_bytes = 256;
  {
    auto log = open(options);
    append_n(*log, 0, 100, 100);
  }
  auto indexes = files(".index");
  ASSERT_GT(indexes.size(), 2u);
  fs::remove(indexes[0]);
  {
    std::ofstream f(indexes[1], std::ios::trunc | std::ios::binary);
    f << "not an index";
  }
  std::vector<std::string> repairs;
  auto log = open(options, &repairs);
  EXPECT_EQ(repairs.size(), 2u);
  for (const auto& r : repairs) EXPECT_NE(r.find("rebuilt"), std::string::npos) << r;
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 100u);
  for (int i : {3, 42, 77}) EXPECT_EQ(log->read(i, 1, 1 << 20)->records.at(0).message, msg(i, 100));
  EXPECT_GT(fs::file_size(files(".index")[0]), 0u);
}

TEST_F(PartitionLogTest, RetentionDropsOldSegmentsBySizeAndTime) {
  LogOptions options;
  options.segment_bytes = 2048;
  options.retention_bytes = 4096;
  options.retention_ms = -1;
  auto log = open(options);
  append_n(*log, 0, 100, 100);
  size_t before = log->segment_count();
  auto deleted = log->enforce_retention(0);
  ASSERT_TRUE(deleted.is_ok());
  EXPECT_GT(*deleted, 0u);
  EXPECT_EQ(log->segment_count(), before - *deleted);
  EXPECT_LE(log->size_bytes(), 4096u + 2048u);
  EXPECT_GT(log->start_offset(), 0);
  EXPECT_EQ(log->next_offset(), 100);
  auto below = log->read(0, 1, 1 << 20);
  EXPECT_FALSE(below.is_ok());
  auto from_start = log->read(log->start_offset(), 1, 1 << 20);
  ASSERT_TRUE(from_start.is_ok());
  EXPECT_EQ(from_start->records.at(0).offset, log->start_offset());

  LogOptions by_time;
  by_time.segment_bytes = 2048;
  by_time.retention_ms = 1000;
  auto aged = PartitionLog::open(dir_ / "aged", by_time, nullptr);
  ASSERT_TRUE(aged.is_ok());
  append_n(**aged, 0, 60, 100);  // timestamps 1'700'000'000'000 + i
  EXPECT_EQ(*(*aged)->enforce_retention(1'700'000'000'000), 0u);
  EXPECT_GT(*(*aged)->enforce_retention(1'700'000'000'000 + 1'000'000), 0u);
  EXPECT_EQ((*aged)->segment_count(), 1u);  // never the active segment
}

TEST_F(PartitionLogTest, ConcurrentAppendersWithFsyncAlwaysKeepEveryMessage) {
  LogOptions options;
  options.fsync = FsyncPolicy::kAlways;
  auto log = open(options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Message m = msg(t * 1000 + i);
        ASSERT_TRUE(log->append(std::span<const Message>(&m, 1)).is_ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(all[i].offset, i);
}

TEST(KafkaPartitioner, MatchesKafkasMurmur2) {
  // Values from Kafka's own UtilsTest (murmur2 of these strings).
  EXPECT_EQ(kafka_murmur2("21"), -973932308);
  EXPECT_EQ(kafka_murmur2("foobar"), -790332482);
  EXPECT_EQ(kafka_murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(kafka_murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(kafka_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(kafka_murmur2(std::string_view("abc", 3)), 479470107);
  for (const char* key : {"a", "sensor-001", "user-42"}) {
    EXPECT_LT(partition_for_key(key, 7), 7u);
  }
}

}  // namespace
}  // namespace wasmq::storage
