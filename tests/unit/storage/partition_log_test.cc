#include "storage/partition_log.h"
#include "common/crc32c.h"
#include "temp_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <limits>
#include <random>
#include <thread>

#include <signal.h>
#include <sys/resource.h>

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

  // Flips one byte of `file` at `position`.
  static void flip_byte(const fs::path& file, uint64_t position) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(position));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(position));
    f.put(static_cast<char>(c ^ 0x5a));
  }

  // Where each batch of a segment starts (they are read by their length fields).
  static std::vector<uint64_t> batch_positions(const fs::path& segment) {
    std::ifstream in(segment, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::vector<uint64_t> out;
    for (uint64_t p = 0; p + kBatchHeaderSize <= bytes.size();) {
      out.push_back(p);
      auto header = parse_batch_header(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()) + p, kBatchHeaderSize));
      if (!header.is_ok()) break;
      p += header->size();
    }
    return out;
  }

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  fs::path dir_;
};

// Descriptors this process has open now.
size_t open_descriptors() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

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
  EXPECT_EQ(past.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(past.status().field(), "offset");
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

// A whole last batch with a bad CRC was written in full, so it may have been acknowledged (a
// torn write is shorter): it is quarantined, not cut, and its offsets are never given again.
TEST_F(PartitionLogTest, QuarantinesAWholeLastBatchWithABadCrc) {
  {
    auto log = open();
    append_n(*log, 0, 20);
  }
  fs::path segment = files(".log").front();
  const uint64_t size = fs::file_size(segment);
  flip_byte(segment, size - 10);  // inside the last batch's records
  std::vector<std::string> repairs;
  auto log = open({}, &repairs);
  ASSERT_EQ(repairs.size(), 1u);
  EXPECT_NE(repairs[0].find("corrupt batch"), std::string::npos) << repairs[0];
  EXPECT_NE(repairs[0].find("offsets 19 to 20 (exclusive) are skipped"), std::string::npos)
      << repairs[0];
  EXPECT_EQ(fs::file_size(segment), size);  // nothing cut
  EXPECT_EQ(log->next_offset(), 20);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(read_all(*log).size(), 19u);
  auto r = log->read(19, 10, 1 << 20);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_EQ(r->skipped[0].first_offset, 19);
  // The log goes on after the skipped offset, and a second start finds the same and no more.
  append_n(*log, 20, 2);
  log.reset();
  repairs.clear();
  log = open({}, &repairs);
  for (const auto& line : repairs) EXPECT_NE(line.find("corrupt batch"), std::string::npos) << line;
  EXPECT_EQ(log->next_offset(), 22);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 21u);
  EXPECT_EQ(all.back().message, msg(21));
}

// A damaged offset field at the tail cannot move the offsets back or far ahead: the skipped
// offsets run from where the log was to no more records than the batch's bytes can hold.
TEST_F(PartitionLogTest, ADamagedCountAtTheTailSkipsNoMoreThanTheBatchCanHold) {
  {
    auto log = open();
    append_n(*log, 0, 5);
  }
  fs::path segment = files(".log").front();
  const uint64_t last = batch_positions(segment).back();
  flip_byte(segment, last + 57);  // the record count's high byte: now tens of millions
  auto log = open();
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 4);
  const int64_t most = static_cast<int64_t>((fs::file_size(segment) - last - kBatchHeaderSize) / 7);
  EXPECT_LE(log->next_offset(), 4 + most);
  EXPECT_GT(log->next_offset(), 4);
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
  append_n(**aged, 0, 60, 100);
  EXPECT_EQ(*(*aged)->enforce_retention(now_ms()), 0u);
  EXPECT_GT(*(*aged)->enforce_retention(now_ms() + 1'000'000), 0u);
  EXPECT_EQ((*aged)->segment_count(), 1u);  // never the active segment
}

// Time retention counts from when the broker wrote a segment: a producer's timestamp (here the
// largest there is) cannot keep a segment forever, nor can an old one delete it early.
TEST_F(PartitionLogTest, RetentionByTimeIgnoresRecordTimestamps) {
  LogOptions options;
  options.segment_bytes = 2048;
  options.retention_ms = 60'000;
  auto log = open(options);
  for (int i = 0; i < 60; ++i) {
    Message m = msg(i, 100);
    m.timestamp = i % 2 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    ASSERT_TRUE(log->append(std::span<const Message>(&m, 1)).is_ok());
  }
  ASSERT_GT(log->segment_count(), 2u);
  EXPECT_EQ(*log->enforce_retention(now_ms()), 0u);
  const size_t segments = log->segment_count();
  EXPECT_EQ(*log->enforce_retention(now_ms() + 120'000), segments - 1);
  EXPECT_EQ(log->segment_count(), 1u);
  // Extreme clocks and retention values do not overflow.
  EXPECT_TRUE(log->enforce_retention(std::numeric_limits<int64_t>::min()).is_ok());
  EXPECT_TRUE(log->enforce_retention(std::numeric_limits<int64_t>::max()).is_ok());
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

// One flipped byte in a batch in the middle of the newest segment: that batch is quarantined,
// every other batch stays readable, its offsets are not given again. The damage may be in the
// records (a CRC mismatch) or in the length field (the next batch is found byte by byte).
TEST_F(PartitionLogTest, QuarantinesACorruptBatchBetweenGoodOnes) {
  // In the records (a CRC mismatch), in batchLength, in baseOffset (outside the CRC).
  for (uint64_t damage_at : {uint64_t{40}, uint64_t{9}, uint64_t{1}}) {
    SCOPED_TRACE(damage_at);
    fs::remove_all(dir_);
    {
      auto log = open();
      append_n(*log, 0, 20);
    }
    fs::path segment = files(".log").front();
    const auto positions = batch_positions(segment);
    ASSERT_EQ(positions.size(), 20u);
    flip_byte(segment, positions[10] + damage_at);
    std::vector<std::string> repairs;
    auto log = open({}, &repairs);
    ASSERT_FALSE(repairs.empty());
    EXPECT_NE(repairs[0].find("corrupt batch"), std::string::npos) << repairs[0];
    EXPECT_EQ(log->next_offset(), 20);
    ASSERT_EQ(log->corrupt_ranges().size(), 1u);
    EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 10);
    EXPECT_EQ(log->corrupt_ranges()[0].end_offset, 11);
    // Its bytes are kept aside.
    ASSERT_TRUE(fs::is_directory(dir_ / "quarantine"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "quarantine"), fs::directory_iterator()), 1);

    // A consumer from 0 reaches the end, sees every good record, and is told what it skipped.
    std::vector<Record> all;
    std::vector<CorruptRange> skipped;
    for (int64_t offset = 0; offset < log->next_offset();) {
      auto r = log->read(offset, 3, 1 << 20);
      ASSERT_TRUE(r.is_ok()) << r.status().message();
      for (auto& rec : r->records) all.push_back(std::move(rec));
      for (auto& s : r->skipped) skipped.push_back(s);
      ASSERT_GT(r->next_offset, offset);
      offset = r->next_offset;
    }
    ASSERT_EQ(all.size(), 19u);
    for (const auto& rec : all) {
      EXPECT_NE(rec.offset, 10);
      EXPECT_EQ(rec.message, msg(static_cast<int>(rec.offset)));
    }
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_EQ(skipped[0].first_offset, 10);
    EXPECT_EQ(skipped[0].end_offset, 11);
    // Reading at the lost offset itself steps over it.
    auto at = log->read(10, 1, 1 << 20);
    ASSERT_TRUE(at.is_ok());
    ASSERT_EQ(at->records.size(), 1u);
    EXPECT_EQ(at->records[0].offset, 11);

    // New appends continue after the end: no offset is reused.
    append_n(*log, 20, 1);
    log.reset();
    std::vector<std::string> again;
    log = open({}, &again);
    EXPECT_EQ(log->next_offset(), 21);
    ASSERT_EQ(log->corrupt_ranges().size(), 1u);
    EXPECT_EQ(read_all(*log).size(), 20u);
  }
}

// A batch hidden in a message's value (a producer can send any bytes) is not taken for the next
// batch when the one around it is damaged: it cannot move the partition's offsets.
TEST_F(PartitionLogTest, ResyncIgnoresABatchHiddenInAValue) {
  std::string hidden;
  Message inner = msg(0);
  encode_batch(int64_t{1} << 62, std::span<const Message>(&inner, 1), &hidden);
  {
    auto log = open();
    append_n(*log, 0, 5);
    Message carrier = msg(5);
    carrier.value = hidden;
    ASSERT_TRUE(log->append(std::span<const Message>(&carrier, 1)).is_ok());
    append_n(*log, 6, 4);
  }
  fs::path segment = files(".log").front();
  const auto positions = batch_positions(segment);
  ASSERT_EQ(positions.size(), 10u);
  flip_byte(segment, positions[5] + 9);  // the carrier's batchLength
  auto log = open();
  EXPECT_EQ(log->next_offset(), 10);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 5);
  EXPECT_EQ(log->corrupt_ranges()[0].end_offset, 6);
  EXPECT_EQ(read_all(*log).size(), 9u);
  append_n(*log, 10, 1);
}

// Corruption in an older segment, before its last index entry, is not looked at by recovery:
// the first read that meets it quarantines it and goes on, instead of failing every read.
TEST_F(PartitionLogTest, QuarantinesCorruptionThatAReadMeetsInAnOlderSegment) {
  LogOptions options;
  options.segment_bytes = 4096;
  options.index_interval_bytes = 256;
  {
    auto log = open(options);
    append_n(*log, 0, 100, 100);
  }
  const fs::path first = files(".log").front();
  const auto positions = batch_positions(first);
  ASSERT_GT(positions.size(), 10u);
  flip_byte(first, positions[3] + 70);  // offset 3's record bytes
  {
    std::vector<std::string> repairs;
    auto log = open(options, &repairs);
    EXPECT_TRUE(repairs.empty()) << repairs.front();  // recovery did not read that far back
    EXPECT_TRUE(log->corrupt_ranges().empty());
    auto from_zero = log->read(0, 100, 1 << 20);
    ASSERT_TRUE(from_zero.is_ok()) << from_zero.status().message();
    EXPECT_EQ(from_zero->records.front().offset, 0);
    ASSERT_EQ(from_zero->skipped.size(), 1u);
    EXPECT_EQ(from_zero->skipped[0].first_offset, 3);
    EXPECT_EQ(from_zero->skipped[0].end_offset, 4);
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 99u);
    for (const auto& rec : all) EXPECT_EQ(rec.message, msg(static_cast<int>(rec.offset), 100));
    ASSERT_EQ(log->corrupt_ranges().size(), 1u);
    auto at = log->read(3, 1, 1 << 20);
    ASSERT_TRUE(at.is_ok());
    EXPECT_EQ(at->records.at(0).offset, 4);
  }
  // After a restart the range is known without a read.
  auto log = open(options);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 3);
  EXPECT_EQ(read_all(*log).size(), 99u);
}

// The Kafka front end's read: whole batches as stored, across segments, bounded by bytes, always
// at least one batch; corruption met on the way is quarantined and stepped over, and no batch is
// handed out twice when the walk starts a segment again.
TEST_F(PartitionLogTest, ReadsWholeBatchesAsStoredAndStepsOverCorruption) {
  LogOptions options;
  options.segment_bytes = 4096;
  options.index_interval_bytes = 256;
  {
    auto log = open(options);
    append_n(*log, 0, 100, 100);
  }
  const fs::path first = files(".log").front();
  const auto positions = batch_positions(first);
  ASSERT_GT(positions.size(), 10u);
  std::string stored;
  {
    std::ifstream in(first, std::ios::binary);
    stored.assign((std::istreambuf_iterator<char>(in)), {});
  }
  flip_byte(first, positions[5] + 70);  // offset 5's record bytes: a wrong CRC
  auto log = open(options);
  auto all = log->read_batches(0, 1 << 20);
  ASSERT_TRUE(all.is_ok()) << all.status().message();
  EXPECT_EQ(all->high_watermark, 100);
  // Batches 0-4 are byte for byte what the segment holds; batch 5 is left out; 6 follows.
  EXPECT_EQ(all->bytes.substr(0, positions[5]), stored.substr(0, positions[5]));
  std::vector<int64_t> bases;
  for (size_t at = 0; at < all->bytes.size();) {
    auto h = parse_batch_header(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(all->bytes.data()) + at, all->bytes.size() - at));
    ASSERT_TRUE(h.is_ok());
    bases.push_back(h->base_offset);
    at += h->size();
  }
  std::vector<int64_t> expected;
  for (int64_t i = 0; i < 100; ++i) {
    if (i != 5) expected.push_back(i);
  }
  EXPECT_EQ(bases, expected);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 5);

  // Bounded by bytes, but never empty: a limit below one batch still returns that batch.
  auto one = log->read_batches(7, 1);
  ASSERT_TRUE(one.is_ok());
  auto h = parse_batch_header(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(one->bytes.data()), one->bytes.size()));
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->base_offset, 7);
  EXPECT_EQ(h->size(), one->bytes.size());
  EXPECT_EQ(log->read_batches(100, 1 << 20)->bytes, "");
  EXPECT_EQ(log->read_batches(101, 1 << 20).status().code(), StatusCode::kOutOfRange);
}

TEST_F(PartitionLogTest, FindsTheFirstOffsetAtOrAfterATime) {
  auto log = open();
  append_n(*log, 0, 10);  // timestamps 1'700'000'000'000 + i
  auto at = log->offset_for_time(1'700'000'000'004);
  ASSERT_TRUE(at.is_ok());
  ASSERT_TRUE(at->has_value());
  EXPECT_EQ(at->value().offset, 4);
  EXPECT_EQ(at->value().timestamp, 1'700'000'000'004);
  EXPECT_EQ(log->offset_for_time(0)->value().offset, 0);
  EXPECT_FALSE(log->offset_for_time(1'800'000'000'000)->has_value());
}

// The time index gives what a scan of every record gives, timestamps out of order included,
// across segments, after a restart (segments found at open are indexed on the first lookup),
// with appends after it, and over a batch corrupted on disk.
TEST_F(PartitionLogTest, TimeLookupsAgreeWithAFullScanAcrossSegmentsAndRestarts) {
  LogOptions options;
  options.segment_bytes = 2048;
  options.index_interval_bytes = 256;
  std::vector<int64_t> stamps;  // by offset
  auto append_some = [&](PartitionLog& log, int count) {
    for (int k = 0; k < count; ++k) {
      const int i = static_cast<int>(stamps.size());
      Message m = msg(i);
      m.timestamp = 1000 + i * 10 + (i * 7919) % 50 - 25;  // rising, with jitter
      ASSERT_TRUE(log.append(std::span<const Message>(&m, 1)).is_ok());
      stamps.push_back(m.timestamp);
    }
  };
  auto expect_scan_results = [&](const PartitionLog& log) {
    const int64_t last = *std::max_element(stamps.begin(), stamps.end());
    for (int64_t t = 900; t <= last + 20; t += 3) {
      std::optional<int64_t> expected;
      for (size_t i = 0; i < stamps.size(); ++i) {
        if (stamps[i] >= t) {
          expected = static_cast<int64_t>(i);
          break;
        }
      }
      auto got = log.offset_for_time(t);
      ASSERT_TRUE(got.is_ok()) << got.status().message();
      ASSERT_EQ(got->has_value(), expected.has_value()) << "t=" << t;
      if (expected) {
        ASSERT_EQ(got->value().offset, *expected) << "t=" << t;
        ASSERT_EQ(got->value().timestamp, stamps[static_cast<size_t>(*expected)]);
      }
    }
  };
  {
    auto log = open(options);
    append_some(*log, 300);
    EXPECT_GT(files(".log").size(), 3u);
    expect_scan_results(*log);
  }
  {
    auto log = open(options);
    expect_scan_results(*log);  // indexed by scanning the segments' headers
    append_some(*log, 100);
    expect_scan_results(*log);
  }
  // A batch damaged on disk: the lookups that reach it quarantine it and go on after it.
  const fs::path first = files(".log").front();
  flip_byte(first, batch_positions(first)[3] + 40);
  auto log = open(options);
  stamps[3] = INT64_MIN;  // offset 3 is gone: no lookup may find it
  expect_scan_results(*log);
}

// Damage that a read finds at the end of the active segment: the read reports the offsets
// skipped, so a restart must not cut them and give them to new records.
TEST_F(PartitionLogTest, NeverReusesOffsetsAReadReportedSkipped) {
  {
    auto log = open();
    append_n(*log, 0, 10);
    fs::path segment = files(".log").front();
    flip_byte(segment, batch_positions(segment).back() + 40);
    auto r = log->read(0, 100, 1 << 20);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->records.size(), 9u);
    ASSERT_EQ(r->skipped.size(), 1u);
    EXPECT_EQ(r->skipped[0].first_offset, 9);
    EXPECT_EQ(r->next_offset, 10);
  }
  auto log = open();
  EXPECT_EQ(log->next_offset(), 10);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  auto appended = log->append(std::span<const Message>(std::vector<Message>{msg(10)}));
  ASSERT_TRUE(appended.is_ok());
  EXPECT_EQ(appended->base_offset, 10);
}

// Makes the CRC of `batch` right again.
void fix_crc(std::string& batch) {
  const uint32_t crc = crc32c(0, batch.data() + 21, batch.size() - 21);
  for (int i = 0; i < 4; ++i) batch[17 + i] = static_cast<char>(crc >> (24 - 8 * i));
}

// One batch of one message at `base` whose header claims offsets up to base + `delta`, with
// its CRC made right (a forged or foreign batch: this log never writes gaps).
std::string batch_claiming(int64_t base, int32_t delta, const std::string& value = "v") {
  Message m;
  m.value = value;
  std::string batch;
  encode_batch(base, std::span<const Message>(&m, 1), &batch);
  for (int i = 0; i < 4; ++i) batch[23 + i] = static_cast<char>(static_cast<uint32_t>(delta) >> (24 - 8 * i));
  fix_crc(batch);
  return batch;
}

// Found by the partition_log fuzz target: a batch whose CRC is right but whose records do not
// decode is taken whole at start (start-up checks CRCs only) and its offsets are given from
// its header; the read that meets it must quarantine that batch and no more, with the same
// offsets. It took the bytes up to the next batch it could find instead, with that batch's
// offset, which disagreed with what start-up had given: the next start moved the high
// watermark back and gave offsets again.
TEST_F(PartitionLogTest, AReadQuarantinesAnUndecodableBatchWithTheOffsetsStartUpGave) {
  fs::create_directories(dir_);
  std::string bad = batch_claiming(1, 98, "0123456789");  // offsets 1 to 99
  bad[kBatchHeaderSize] = 0x7f;  // the first record's length: past the end of the batch
  fix_crc(bad);
  {
    std::ofstream out(dir_ / "00000000000000000000.log", std::ios::binary);
    out << batch_claiming(0, 0) << bad << batch_claiming(100, 0) << batch_claiming(101, 0);
  }
  {
    auto log = open();
    EXPECT_EQ(log->next_offset(), 102);
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[1].offset, 100);
    ASSERT_EQ(log->corrupt_ranges().size(), 1u);
    EXPECT_EQ(log->corrupt_ranges()[0].first_offset, 1);
    EXPECT_EQ(log->corrupt_ranges()[0].end_offset, 100);
    append_n(*log, 102, 1);
  }
  auto log = open();
  EXPECT_EQ(log->next_offset(), 103);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].offset, 100);
  EXPECT_EQ(all[3].message, msg(102));
}

// The index holds offsets relative to the segment's base in 32 bits: recovery takes no batch
// whose offsets pass base + 2^32 - 1 in one segment (it is skipped, with as few offsets as its
// bytes can hold), and an append that would pass it starts a new segment.
TEST_F(PartitionLogTest, OffsetsInOneSegmentStayWithinTheIndexRange) {
  constexpr int64_t k31 = int64_t{1} << 31;
  fs::create_directories(dir_);
  {
    std::ofstream out(dir_ / "00000000000000000000.log", std::ios::binary);
    out << batch_claiming(0, INT32_MAX) << batch_claiming(k31, INT32_MAX);
  }
  std::vector<std::string> repairs;
  auto log = open({}, &repairs);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  EXPECT_EQ(log->corrupt_ranges()[0].first_offset, k31);
  EXPECT_EQ(log->next_offset(), k31 + 1);
  auto appended = log->append(std::span<const Message>(std::vector<Message>{msg(1)}));
  ASSERT_TRUE(appended.is_ok()) << appended.status().message();
  EXPECT_EQ(appended->base_offset, k31 + 1);
  log.reset();
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  {
    std::ofstream out(dir_ / "00000000000000000000.log", std::ios::binary);
    out << batch_claiming(0, INT32_MAX) << batch_claiming(k31, INT32_MAX - 1);
  }
  log = open();
  EXPECT_TRUE(log->corrupt_ranges().empty());
  const int64_t limit = (int64_t{1} << 32) - 1;
  EXPECT_EQ(log->next_offset(), limit);
  appended = log->append(std::span<const Message>(std::vector<Message>{msg(2)}));
  ASSERT_TRUE(appended.is_ok()) << appended.status().message();
  EXPECT_EQ(appended->base_offset, limit);
  EXPECT_EQ(files(".log").size(), 2u);
  log.reset();
  repairs.clear();
  log = open({}, &repairs);
  EXPECT_TRUE(repairs.empty()) << repairs.front();
  auto back = log->read(limit, 1, 1 << 20);
  ASSERT_TRUE(back.is_ok() && back->records.size() == 1) << back.status().message();
  EXPECT_EQ(back->records[0].message, msg(2));
}

// An older segment's bad tail is corruption, not a torn write (a roll syncs the segment first):
// it is quarantined up to the next segment, never cut, and the offsets after it stay.
TEST_F(PartitionLogTest, QuarantinesTheBadTailOfAnOlderSegment) {
  LogOptions options;
  options.segment_bytes = 4096;
  {
    auto log = open(options);
    append_n(*log, 0, 100, 100);
  }
  const fs::path first = files(".log").front();
  const auto positions = batch_positions(first);
  flip_byte(first, positions.back() + 70);
  const uint64_t size = fs::file_size(first);
  std::vector<std::string> repairs;
  auto log = open(options, &repairs);
  EXPECT_EQ(fs::file_size(first), size);  // nothing cut
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "quarantine"), fs::directory_iterator()), 1);
  ASSERT_EQ(log->corrupt_ranges().size(), 1u);
  const int64_t lost = log->corrupt_ranges()[0].first_offset;
  EXPECT_EQ(log->corrupt_ranges()[0].end_offset, lost + 1);
  EXPECT_EQ(log->next_offset(), 100);
  EXPECT_EQ(read_all(*log).size(), 99u);
}

// Readers run while appenders write (the index grows and reallocates under them); every read
// returns whole, consecutive, correct records. Meant to run clean under ThreadSanitizer.
TEST_F(PartitionLogTest, ReadsWhileOtherThreadsAppend) {
  LogOptions options;
  options.segment_bytes = 64 * 1024;
  options.index_interval_bytes = 64;  // an index entry nearly every batch
  auto log = open(options);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 random(t);
      while (!done) {
        const int64_t end = log->next_offset();
        const int64_t from = end == 0 ? 0 : static_cast<int64_t>(random() % end);
        auto r = log->read(from, 50, 1 << 20);
        if (!r.is_ok()) {
          ++bad;
          continue;
        }
        int64_t expected = from;
        for (const auto& rec : r->records) {
          if (rec.offset != expected || rec.message != msg(static_cast<int>(rec.offset))) ++bad;
          ++expected;
        }
      }
    });
  }
  std::vector<std::thread> appenders;
  std::atomic<int> next{0};
  std::mutex order;  // offsets must match the messages' numbers
  for (int t = 0; t < 2; ++t) {
    appenders.emplace_back([&] {
      for (int i = 0; i < 1500; ++i) {
        std::lock_guard lock(order);
        Message m = msg(next);
        auto r = log->append(std::span<const Message>(&m, 1));
        if (!r.is_ok() || r->base_offset != next) ++bad;
        ++next;
      }
    });
  }
  for (auto& a : appenders) a.join();
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(read_all(*log).size(), 3000u);
}

// Many partitions, few descriptors: each log opens its files when used, through one bounded
// cache, so the process holds at most the bound (plus what reads and writes hold while they run).
TEST_F(PartitionLogTest, OpenFilesStayWithinTheCacheBound) {
  constexpr size_t kBound = 8;
  LogOptions options;
  options.files = std::make_shared<FileCache>(kBound);
  const size_t before = open_descriptors();
  std::vector<std::unique_ptr<PartitionLog>> logs;
  for (int p = 0; p < 60; ++p) {
    auto log = PartitionLog::open(dir_ / ("t" + std::to_string(p)) / "0", options, nullptr);
    ASSERT_TRUE(log.is_ok()) << log.status().message();
    logs.push_back(std::move(*log));
    append_n(*logs.back(), 0, 3);
    EXPECT_LE(open_descriptors(), before + kBound) << "after partition " << p;
  }
  for (int round = 0; round < 2; ++round) {
    for (auto& log : logs) {
      append_n(*log, 3 + round, 1);
      ASSERT_TRUE(log->flush().is_ok());
      EXPECT_EQ(read_all(*log).size(), 4u + round);
      EXPECT_LE(open_descriptors(), before + kBound);
    }
  }
  EXPECT_LE(options.files->cached(), kBound);
}

// A failed write (here the file-size limit, as a full disk would) names the partition and the
// cause, not the server's path, and leaves the log as it was.
TEST_F(PartitionLogTest, FailedAppendNamesThePartitionNotThePath) {
  auto log = PartitionLog::open(dir_ / "orders" / "3", {}, nullptr);
  ASSERT_TRUE(log.is_ok());
  append_n(**log, 0, 2);
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGXFSZ, &ignore, &previous);
  struct rlimit old_limit;
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  struct rlimit small = old_limit;
  small.rlim_cur = fs::file_size(dir_ / "orders" / "3" / "00000000000000000000.log") + 100;
  ::setrlimit(RLIMIT_FSIZE, &small);
  Message big = msg(2, 4096);
  auto failed = (*log)->append(std::span<const Message>(&big, 1));
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &previous, nullptr);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kIo);
  const std::string& message = failed.status().message();
  EXPECT_NE(message.find("orders/3"), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(EFBIG)), std::string::npos) << message;
  EXPECT_EQ(message.find(dir_.string()), std::string::npos) << message;
  EXPECT_EQ((*log)->next_offset(), 2);
  append_n(**log, 2, 1);
  EXPECT_EQ(read_all(**log).size(), 3u);
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
