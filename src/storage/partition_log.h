// One topic-partition's log: a directory of segments, each a file of RecordBatch v2 batches
// (`<base offset, 20 digits>.log`) with a sparse offset index (`.index`: big-endian pairs of
// u32 offset-relative-to-base and u32 file position, one per `index_interval_bytes` of log).
//
// Durability: with FsyncPolicy::kAlways, append() returns only after its batch is on disk;
// concurrent appenders share fsyncs (group commit). With kInterval, flush() is called
// periodically by the owner (TopicStore) and append() returns after the write.
//
// Recovery (open): the newest segment is scanned batch by batch (length, header, CRC) and cut at
// the first torn or corrupt batch; older segments are checked from their last index entry to
// their end; a missing or damaged index is rebuilt. Every repair is reported.
//
// Threads: every public method may be called from any thread. Appends are serialized; reads
// run concurrently with appends and see only whole, appended batches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "storage/record_batch.h"

namespace wasmq::storage {

enum class FsyncPolicy { kAlways, kInterval };

struct LogOptions {
  uint64_t segment_bytes = 128ull * 1024 * 1024;
  uint32_t index_interval_bytes = 4096;
  int64_t retention_ms = 7ll * 24 * 3600 * 1000;  // < 0: keep forever
  int64_t retention_bytes = -1;                   // < 0: no size bound
  FsyncPolicy fsync = FsyncPolicy::kInterval;
};

struct AppendResult {
  int64_t base_offset = 0;
  int64_t last_offset = 0;
};

struct ReadResult {
  std::vector<Record> records;
  int64_t next_offset = 0;     // where the next read continues
  int64_t high_watermark = 0;  // one past the last stored offset
  int64_t log_start_offset = 0;
};

class PartitionLog {
 public:
  // Opens (creating if needed) the log in `dir`, recovering it. Lines describing each repair
  // are appended to `repairs`.
  static Result<std::unique_ptr<PartitionLog>> open(const std::filesystem::path& dir,
                                                    const LogOptions& options,
                                                    std::vector<std::string>* repairs);
  ~PartitionLog();
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // Appends `messages` (at least one) as one batch. On failure nothing is appended.
  Result<AppendResult> append(std::span<const Message> messages);

  // Makes everything appended so far durable.
  Status flush();

  // Up to `max_messages` records from `offset` on, stopping after the batch that passes
  // `max_bytes` (at least one record is returned when any exists). `offset` below the log start
  // or above the high watermark is an error (kNotFound names the valid range).
  Result<ReadResult> read(int64_t offset, size_t max_messages, size_t max_bytes) const;

  int64_t start_offset() const;
  int64_t next_offset() const;  // the high watermark
  uint64_t size_bytes() const;
  size_t segment_count() const;

  // Deletes the oldest segments that are past retention by time or size; never the active
  // segment. Returns how many were deleted.
  Result<size_t> enforce_retention(int64_t now_ms);

  struct Segment;

 private:
  PartitionLog(std::filesystem::path dir, LogOptions options);
  Status roll_locked();
  Status sync_through(int64_t offset);

  const std::filesystem::path dir_;
  const LogOptions options_;

  mutable std::mutex mutex_;  // guards segments_ and each segment's mutable state
  std::vector<std::shared_ptr<Segment>> segments_;

  std::mutex sync_mutex_;           // one fsync at a time; later appenders ride along
  int64_t durable_offset_ = 0;      // guarded by sync_mutex_: every offset below is on disk
};

// Kafka's default partitioner for a keyed message: murmur2 of the key bytes, made positive,
// modulo the partition count.
uint32_t partition_for_key(std::string_view key, uint32_t partitions);
// Kafka's murmur2 (seed 0x9747b28c), as its clients compute it.
int32_t kafka_murmur2(std::string_view data);

}  // namespace wasmq::storage
