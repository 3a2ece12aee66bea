// Private to PartitionLog's files (not part of the storage room's interface): a segment's state
// and its file format (the batch checks, the sparse index, the recovery scan, quarantine names).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "storage/file_cache.h"
#include "storage/partition_log.h"
#include "storage/record_batch.h"

namespace wasmq::storage {
namespace fs = std::filesystem;

constexpr size_t kIndexEntrySize = 8;
constexpr const char* kQuarantineDir = "quarantine";

// The wall clock, in ms since the epoch.
int64_t wall_ms();
std::string errno_text();
// "<base offset, 20 digits><extension>": the name of a segment's file.
std::string segment_name(int64_t base_offset, const char* extension);
// Write or read all `size` bytes at `position`, retrying on EINTR; false (errno set) when not.
bool pwrite_all(int fd, const char* data, size_t size, uint64_t position);
bool read_exact(int fd, uint64_t position, uint8_t* out, size_t size);
void put_u32_be(char* p, uint32_t v);

// Closes a descriptor opened for recovery when it goes out of scope.
struct ScopedFd {
  int fd = -1;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};

// The batch header at `position`; nullopt when the bytes there are not a whole, well-formed
// batch header whose batch fits before `end`.
std::optional<BatchHeader> header_at(int fd, uint64_t position, uint64_t end);

// True when a whole batch with a good CRC and the base offset `expected` starts at `position`
// (within a segment batches follow each other without gaps; the base offset is outside the
// CRC, so this is what catches a damaged one); its header goes to `out`.
// With `decode_records`, the records must decode too: a batch whose CRC is right but whose
// records do not (a writer's bug, or bytes forged with a valid CRC) fails every read, so the
// paths that look for what a read can serve count it as bad. Recovery's scan at start leaves
// that out (it would decode every batch of the active segment); a read that meets such a batch
// quarantines it through those paths.
bool good_batch_at(int fd, uint64_t position, uint64_t end, int64_t expected,
                   std::vector<uint8_t>& buffer, BatchHeader* out, bool decode_records = false);

// The first position after the bad stretch that starts at `bad` (before `end`) where a good
// batch starts, byte by byte: a damaged length field says nothing about where the next batch
// is. Its base offset must lie between `min_offset` and `min_offset` plus the bytes skipped
// (every record takes at least a byte), so that a batch hidden in a message's value cannot move
// the offsets anywhere; its offsets must end within `offset_limit`. Reads in windows, so memory
// stays small whatever the segment's size.
std::optional<uint64_t> find_next_batch(int fd, uint64_t bad, uint64_t end, int64_t min_offset,
                                        int64_t offset_limit, BatchHeader* header);

// Copies bytes [from, to) of `fd` to `dest` (through a temporary file and a rename).
bool copy_bytes(int fd, uint64_t from, uint64_t to, const fs::path& dest);

// One segment of a log: its files and what is known of them. Its mutable state is guarded by
// the owning log's mutex_.
struct PartitionLog::Segment {
  // A corrupt stretch of the file: bytes [position, end_position), offsets
  // [first_offset, end_offset).
  struct Quarantined {
    uint64_t position = 0;
    uint64_t end_position = 0;
    int64_t first_offset = 0;
    int64_t end_offset = 0;
  };
  struct IndexEntry {
    uint32_t relative_offset;
    uint32_t position;
  };
  // The time index (lookups by time, PartitionLog::offset_for_time), kept in memory: an entry
  // every index_interval_bytes (and one at the start) giving the greatest timestamp of the
  // batches before its position. A search for the first record at or after T starts at the last
  // entry whose max_before is below T: no batch before it holds such a record, and the next
  // entry's is not below T, so the scan reads at most an interval of batches. Built on append;
  // for a segment found at open, by a scan of its batch headers the first time a lookup needs
  // it (time_indexed false until then).
  struct TimeEntry {
    int64_t max_before;
    uint32_t position;
    uint32_t relative_offset;
  };

  int64_t base_offset = 0;
  int64_t next_offset = 0;  // one past the last record
  uint64_t size = 0;        // bytes of whole batches (and quarantined stretches) in the file
  uint64_t bytes_since_index = 0;
  int64_t last_write_ms = 0;  // the broker's clock at the last write (for retention by time)
  std::vector<IndexEntry> index;
  std::vector<TimeEntry> time_index;
  bool time_indexed = false;
  int64_t max_timestamp = INT64_MIN;  // the greatest batch max timestamp (when time_indexed)
  uint64_t bytes_since_time_entry = 0;
  std::vector<Quarantined> corrupt;  // sorted by position
  fs::path log_path;
  fs::path index_path;
  std::shared_ptr<FileCache> files;
  uint64_t key = 0;        // the log file's key in `files`; the index's is key + 1
  bool log_dirty = false;  // written since the last fsync
  bool index_dirty = false;
  bool removed = false;  // deleted by retention or closed

  ~Segment() {
    if (files) {
      files->forget(key);
      files->forget(key + 1);
    }
  }

  Result<std::shared_ptr<OpenFile>> log_file() const {
    return files->acquire(key, log_path, O_RDWR);
  }
  Result<std::shared_ptr<OpenFile>> index_file() const {
    return files->acquire(key + 1, index_path, O_RDWR | O_CREAT);
  }

  // Position of the last index entry at or before `offset` and the offset of the batch there
  // (0 and base_offset when none).
  std::pair<uint64_t, int64_t> position_for(int64_t offset) const {
    auto it =
        std::upper_bound(index.begin(), index.end(), offset - base_offset,
                         [](int64_t rel, const IndexEntry& e) { return rel < e.relative_offset; });
    if (it == index.begin()) return {0, base_offset};
    --it;
    return {it->position, base_offset + it->relative_offset};
  }

  // Notes the batch written at `position` in the time index.
  void note_time(uint64_t position, int64_t batch_base, int64_t batch_max_timestamp,
                 uint64_t batch_size, uint64_t interval) {
    if (time_index.empty() || bytes_since_time_entry >= interval) {
      time_index.push_back({max_timestamp, static_cast<uint32_t>(position),
                            static_cast<uint32_t>(batch_base - base_offset)});
      bytes_since_time_entry = 0;
    }
    bytes_since_time_entry += batch_size;
    max_timestamp = std::max(max_timestamp, batch_max_timestamp);
  }

  // Where a search for the first record at or after `timestamp` starts: the offset of the last
  // time entry whose max_before is below it (the base offset when none).
  int64_t time_search_offset(int64_t timestamp) const {
    auto it = std::lower_bound(time_index.begin(), time_index.end(), timestamp,
                               [](const TimeEntry& e, int64_t t) { return e.max_before < t; });
    if (it == time_index.begin()) return base_offset;
    --it;
    return base_offset + it->relative_offset;
  }

  const Quarantined* quarantined_at(uint64_t position) const {
    for (const auto& q : corrupt) {
      if (q.position == position) return &q;
    }
    return nullptr;
  }

  // Adds `q` unless a stretch at its position is known; true when added.
  bool add_quarantined(const Quarantined& q) {
    if (quarantined_at(q.position)) return false;
    corrupt.push_back(q);
    std::sort(corrupt.begin(), corrupt.end(),
              [](const Quarantined& a, const Quarantined& b) { return a.position < b.position; });
    return true;
  }

  // One past the largest offset the segment can hold: the index keeps offsets relative to the
  // base in 32 bits.
  int64_t offset_limit() const { return base_offset + int64_t{UINT32_MAX}; }

  std::string quarantine_name(const Quarantined& q) const {
    char name[128];
    std::snprintf(name, sizeof name,
                  "%020" PRId64 "-%" PRIu64 "-%" PRIu64 "-%" PRId64 "-%" PRId64 ".corrupt",
                  base_offset, q.position, q.end_position, q.first_offset, q.end_offset);
    return name;
  }
};

using Quarantined = PartitionLog::Segment::Quarantined;

struct ScanEnd {
  uint64_t good_end = 0;  // where the good data ends: the file's size when nothing is wrong
  std::string problem;    // why it ends early
};

// Scans batches from `position` (whose offset is `expected`) to `file_size`, checking each
// (length, header, offsets, CRC, offsets within the segment's limit) and rebuilding index
// entries past `position` by append()'s rule. Bad stretches go to the segment and to `found`:
// - a stretch that an earlier run quarantined (`recorded`, from the quarantine folder) where
//   the scan meets it, so that what was once skipped stays skipped;
// - a bad stretch that a good batch follows, stepped over;
// - a whole batch with a bad CRC where nothing good follows: it has its full length, so it was
//   written whole and may have been acknowledged (a write that a crash tore is shorter, or has
//   no header); its offsets are skipped, never given again. They run to `next_base` (the next
//   segment's base offset) in an older segment, which must stay contiguous with the next one,
//   and as far as its header says in the newest (next_base < 0).
// Anything else that nothing good follows ends the scan: a torn tail, which open() cuts from
// the newest segment.
ScanEnd scan(PartitionLog::Segment& s, int fd, uint64_t position, int64_t expected,
             uint64_t file_size, uint32_t index_interval, int64_t next_base,
             const std::vector<Quarantined>& recorded, std::vector<Quarantined>* found);

// Loads `.index` into memory; false when it is absent, unreadable or inconsistent.
bool load_index(PartitionLog::Segment& s, int index_fd, int log_fd, uint64_t file_size);

// Rewrites the index file from `s.index`.
bool rewrite_index(const PartitionLog::Segment& s, int index_fd);

// The quarantined stretches recorded by earlier runs, by segment base offset, from the names of
// the files in `<dir>/quarantine`.
std::map<int64_t, std::vector<Quarantined>> load_quarantine(const fs::path& dir);

}  // namespace wasmq::storage
