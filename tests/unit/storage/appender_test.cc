// The appender (appender.h): jobs for a partition appended in the order queued, one result per
// batch, callbacks on its thread, drain() and destruction write what is queued.
#include "storage/appender.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include "storage/record_batch.h"
#include "temp_dir.h"

namespace wasmq::storage {
namespace {

namespace fs = std::filesystem;

EncodedBatch batch_of(const std::vector<std::string>& values) {
  std::vector<Message> messages;
  for (const auto& v : values) {
    Message m;
    m.value = v;
    m.timestamp = 1;
    messages.push_back(std::move(m));
  }
  EncodedBatch b;
  encode_batch(0, messages, &b.bytes);
  b.records = static_cast<uint32_t>(messages.size());
  return b;
}

class AppenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_temp_dir("wasmq-appender");
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<PartitionLog> open(const std::string& name, FsyncPolicy fsync) {
    LogOptions options;
    options.fsync = fsync;
    auto log = PartitionLog::open(dir_ / name, options, nullptr);
    EXPECT_TRUE(log.is_ok());
    return std::move(*log);
  }
  fs::path dir_;
};

TEST_F(AppenderTest, AppendsEachPartitionsJobsInOrderFromManyThreads) {
  for (FsyncPolicy fsync : {FsyncPolicy::kInterval, FsyncPolicy::kAlways}) {
    auto a = open(fsync == FsyncPolicy::kAlways ? "a-always" : "a", fsync);
    auto b = open(fsync == FsyncPolicy::kAlways ? "b-always" : "b", fsync);
    std::atomic<int> answered{0};
    std::atomic<bool> off_thread{true};
    const auto caller = std::this_thread::get_id();
    {
      Appender appender;
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          PartitionLog& log = t % 2 ? *b : *a;
          for (int i = 0; i < 100; ++i) {
            const std::string v = std::to_string(t) + ":" + std::to_string(i);
            std::vector<EncodedBatch> batches;
            batches.push_back(batch_of({v + "a", v + "b"}));
            batches.push_back(batch_of({v + "c"}));
            appender.append(log, nullptr, std::move(batches),
                            [&](std::vector<Result<AppendResult>> results) {
                              if (std::this_thread::get_id() == caller) off_thread = false;
                              ASSERT_EQ(results.size(), 2u);
                              ASSERT_TRUE(results[0].is_ok());
                              ASSERT_TRUE(results[1].is_ok());
                              EXPECT_EQ(results[0]->last_offset + 1, results[1]->base_offset);
                              EXPECT_EQ(results[0]->last_offset, results[0]->base_offset + 1);
                              ++answered;
                            });
          }
        });
      }
      for (auto& t : threads) t.join();
      appender.drain();
      EXPECT_EQ(answered, 400);
    }
    EXPECT_TRUE(off_thread);
    for (PartitionLog* log : {a.get(), b.get()}) {
      auto read = log->read(0, 10000, 1 << 30);
      ASSERT_TRUE(read.is_ok());
      ASSERT_EQ(read->records.size(), 600u);
      // Each producer's records in its order, each job's three together.
      std::map<char, int> next;
      for (size_t i = 0; i < read->records.size(); i += 3) {
        const std::string& v = read->records[i].message.value;
        const char producer = v[0];
        EXPECT_EQ(v, std::string(1, producer) + ":" + std::to_string(next[producer]) + "a");
        EXPECT_EQ(read->records[i + 2].message.value, v.substr(0, v.size() - 1) + "c");
        ++next[producer];
      }
    }
  }
}

// Destroying the appender writes what is queued and answers it.
TEST_F(AppenderTest, WritesWhatIsQueuedBeforeItStops) {
  auto log = open("p", FsyncPolicy::kInterval);
  std::atomic<int> answered{0};
  {
    Appender appender;
    for (int i = 0; i < 50; ++i) {
      std::vector<EncodedBatch> batches;
      batches.push_back(batch_of({std::to_string(i)}));
      appender.append(*log, nullptr, std::move(batches),
                      [&](std::vector<Result<AppendResult>>) { ++answered; });
    }
  }
  EXPECT_EQ(answered, 50);
  EXPECT_EQ(log->next_offset(), 50);
}

// At the first failure nothing more of the partition is appended in that call: a later batch
// after a failed one would reorder it.
TEST_F(AppenderTest, ABatchThatFailsStopsTheOnesAfterIt) {
  auto log = open("p", FsyncPolicy::kInterval);
  std::vector<EncodedBatch> batches;
  batches.push_back(batch_of({"first"}));
  batches.push_back(EncodedBatch{});  // no records: refused
  batches.push_back(batch_of({"third"}));
  auto results = log->append_batches(batches);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].is_ok());
  EXPECT_FALSE(results[1].is_ok());
  EXPECT_FALSE(results[2].is_ok());
  EXPECT_EQ(log->next_offset(), 1);
  auto read = log->read(0, 10, 1 << 20);
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->records.size(), 1u);
  EXPECT_EQ(read->records[0].message.value, "first");
}

}  // namespace
}  // namespace wasmq::storage
