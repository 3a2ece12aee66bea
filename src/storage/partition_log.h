// One topic-partition's log: a directory of segments, each a file of RecordBatch v2 batches
// (`<base offset, 20 digits>.log`) with a sparse offset index (`.index`: big-endian pairs of
// u32 offset-relative-to-base and u32 file position, one per `index_interval_bytes` of log).
//
// Durability: with FsyncPolicy::kAlways, append() returns only after its batch is on disk;
// concurrent appenders share fsyncs (group commit). With kInterval, flush() is called
// periodically by the owner (TopicStore), which learns through `on_unsynced` which logs need it,
// and append() returns after the write.
//
// Descriptors: segment files are opened when used, through the FileCache of the options, and
// closed when the cache needs room; an idle partition holds none.
//
// Recovery (open): the newest segment is scanned batch by batch (length, header, CRC); older
// segments from their last index entry to their end; a missing or damaged index is rebuilt.
// A bad batch followed by good ones is corruption: its bytes are copied to
// `<dir>/quarantine/<segment>-<position>-<end position>-<first offset>-<end offset>.corrupt`,
// left in place in the segment, and skipped by readers; its offsets are never given again.
// Only a bad tail of the newest segment (a write torn by a crash) is cut off. Corruption that
// recovery did not look at (older segments, before their last index entry) is found by the
// read that meets it and handled the same way. Every repair is reported.
//
// Errors returned to callers name the partition (`<topic>/<partition>`, from the directory's
// last two components) and the cause, never a path; the log lines of the "storage" target name
// the file.
//
// Threads: every public method may be called from any thread. Appends are serialized; reads
// run concurrently with appends and see only whole, appended batches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/mutex.h"
#include "common/status.h"
#include "storage/file_cache.h"
#include "storage/record_batch.h"

namespace wasmq::storage {

enum class FsyncPolicy { kAlways, kInterval };

struct LogOptions {
  uint64_t segment_bytes = 128ull * 1024 * 1024;
  uint32_t index_interval_bytes = 4096;
  // Segments whose last write is older than this are deleted (< 0: keep forever). The time is
  // the broker's clock when it wrote the segment, not the records' timestamps, which producers
  // choose.
  int64_t retention_ms = 7ll * 24 * 3600 * 1000;
  int64_t retention_bytes = -1;  // < 0: no size bound
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  // Open segment files, shared by the logs of a store. Null: the log keeps its own, of 16.
  std::shared_ptr<FileCache> files;
  // With kInterval: called when the log goes from "all synced" to "has unsynced writes", under
  // the log's lock (so it must only take note, e.g. queue the log for the next flush).
  std::function<void()> on_unsynced;
};

struct AppendResult {
  int64_t base_offset = 0;
  int64_t last_offset = 0;
};

// A RecordBatch made by encode_batch at base offset 0, outside any lock, and its record count:
// the base offset lies outside the CRC, so append_batches() writes the real one in.
struct EncodedBatch {
  std::string bytes;
  uint32_t records = 0;
};

// Offsets [first_offset, end_offset) that are lost to a corrupt batch (its bytes quarantined).
struct CorruptRange {
  int64_t first_offset = 0;
  int64_t end_offset = 0;
};

struct ReadResult {
  std::vector<Record> records;
  int64_t next_offset = 0;     // where the next read continues
  int64_t high_watermark = 0;  // one past the last stored offset
  int64_t log_start_offset = 0;
  // Corrupt ranges this read stepped over, within the offsets it covered (next_offset is past
  // them): those offsets hold no readable record and never will.
  std::vector<CorruptRange> skipped;
};

// Whole stored batches as they are on disk (for the Kafka front end's Fetch).
struct BatchRead {
  std::string bytes;           // whole batches, in offset order
  int64_t high_watermark = 0;  // one past the last stored offset
  int64_t log_start_offset = 0;
};

// The first record at or after a time (ListOffsets by timestamp).
struct TimeOffset {
  int64_t offset = 0;
  int64_t timestamp = 0;
};

class PartitionLog {
 public:
  // Opens (creating if needed) the log in `dir`, recovering it. Lines describing each repair
  // are appended to `repairs`. (Not analysed for locks: no other thread sees the log before it
  // returns.)
  static Result<std::unique_ptr<PartitionLog>> open(const std::filesystem::path& dir,
                                                    const LogOptions& options,
                                                    std::vector<std::string>* repairs) NO_THREAD_SAFETY_ANALYSIS;
  // Syncs what is unsynced (unless closed).
  ~PartitionLog();
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // Appends `messages` (at least one) as one batch. On failure nothing is appended.
  Result<AppendResult> append(std::span<const Message> messages);

  // Appends `batches` in order, each at the next offset (written into its bytes), under one
  // lock, and with FsyncPolicy::kAlways syncs once for all of them before returning. One result
  // per batch. At the first failure nothing more is appended: that batch and the ones after it
  // get the failure (a later batch stored after a failed one would reorder the partition).
  std::vector<Result<AppendResult>> append_batches(std::span<EncodedBatch> batches);

  // Makes everything appended so far durable.
  Status flush();

  // Up to `max_messages` records from `offset` on, stopping after the batch that passes
  // `max_bytes` (at least one record is returned when any exists). `offset` below the log start
  // or above the high watermark is an error (kOutOfRange, field "offset", names the valid range). Corrupt batches
  // are skipped and reported in `skipped`.
  Result<ReadResult> read(int64_t offset, size_t max_messages, size_t max_bytes) const;

  // Whole batches from the one holding `offset` on, as stored (CRC checked), stopping before the
  // batch that would pass `max_bytes` (the first batch is returned whatever its size). Corrupt
  // stretches are stepped over (and quarantined when met first) as read() does; errors as read().
  Result<BatchRead> read_batches(int64_t offset, size_t max_bytes) const;

  // The first record whose timestamp is at or after `timestamp` (nullopt when none is), through
  // the segments' time indexes (segment.h): segments whose batches are all older are passed
  // over, and in the first one that is not, at most an index interval of batches is read before
  // the batch that holds the record. A segment found at open is indexed by a scan of its batch
  // headers the first time a lookup needs it.
  Result<std::optional<TimeOffset>> offset_for_time(int64_t timestamp) const;

  int64_t start_offset() const;
  int64_t next_offset() const;  // the high watermark
  uint64_t size_bytes() const;
  size_t segment_count() const;
  // The corrupt ranges known now (found at recovery or by reads), oldest first.
  std::vector<CorruptRange> corrupt_ranges() const;
  // "<topic>/<partition>": how errors name this log.
  const std::string& label() const { return label_; }

  // Deletes the oldest segments that are past retention by time or size; never the active
  // segment. Returns how many were deleted.
  Result<size_t> enforce_retention(int64_t now_ms);

  // For a removed topic: later reads and appends fail with kNotFound, and the log's cached
  // descriptors are closed. Nothing is synced any more.
  void close();

  struct Segment;

 private:
  PartitionLog(std::filesystem::path dir, LogOptions options);
  // A new, empty segment at `base`, its files created and their directory entries synced.
  Result<std::shared_ptr<Segment>> create_segment(int64_t base);
  Status roll_locked() REQUIRES(mutex_);
  // What read() and read_batches() share: from the batch holding `offset` on, every whole batch
  // in order. `visit(header, bytes)` says whether to go on (kNext), to stop (kStop), or that the
  // batch is bad (kBad: it is quarantined and the walk goes on past it, never visiting a batch
  // twice). `on_skip(first, end, corrupt)` is told of offsets that hold nothing: a corrupt
  // stretch, or a gap before the next segment. Sets the log start and high watermark.
  enum class Visit { kNext, kStop, kBad };
  using SkipFn = std::function<void(int64_t first, int64_t end, bool corrupt)>;
  using VisitFn = std::function<Visit(const BatchHeader& header, std::vector<uint8_t>& bytes)>;
  Status walk(int64_t offset, const SkipFn& on_skip, const VisitFn& visit, int64_t* log_start,
              int64_t* high_watermark) const;
  Status sync_through(int64_t offset);
  // A Status for a failed file operation: the caller gets the label and `cause`, the log the
  // path.
  Status io_failure(const std::string& what, const std::filesystem::path& path,
                    const std::string& cause) const;
  // Finds the corrupt batch that a read met in `segment` (scanning with CRC checks from a
  // known batch start), quarantines it and records it. kIo when nothing bad is found there.
  Status quarantine_for_read(const std::shared_ptr<Segment>& segment, uint64_t from_position,
                             int64_t from_offset, uint64_t end_position) const;
  // Builds the time index of a segment found at open: its batch headers read outside the lock
  // to the size it had, the rest (appended meanwhile) under it. Does nothing when built.
  Status index_times(const std::shared_ptr<Segment>& segment) const;
  // The offset a search for the first record at or after `timestamp` starts from; nullopt when
  // no segment holds a batch that new.
  Result<std::optional<int64_t>> time_search_start(int64_t timestamp) const;

  const std::filesystem::path dir_;
  const LogOptions options_;
  const std::string label_;

  mutable Mutex mutex_;  // guards segments_, closed_, unsynced_ and each segment's state
  std::vector<std::shared_ptr<Segment>> segments_ GUARDED_BY(mutex_);
  bool closed_ GUARDED_BY(mutex_) = false;
  bool unsynced_ GUARDED_BY(mutex_) = false;  // written since the last sync began

  Mutex sync_mutex_;       // one fsync at a time; later appenders ride along
  int64_t durable_offset_ GUARDED_BY(sync_mutex_) = 0;  // every offset below is on disk

  mutable Mutex repair_mutex_;  // one read-time quarantine at a time
};

// Kafka's default partitioner for a keyed message: murmur2 of the key bytes, made positive,
// modulo the partition count.
uint32_t partition_for_key(std::string_view key, uint32_t partitions);
// Kafka's murmur2 (seed 0x9747b28c), as its clients compute it.
int32_t kafka_murmur2(std::string_view data);

}  // namespace wasmq::storage
