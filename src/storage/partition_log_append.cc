// PartitionLog's write path: appends under the lock, rolling segments, and the group-commit
// fsync (one at a time per partition; appenders that arrive meanwhile share the next one).
#include <unistd.h>

#include "storage/partition_log.h"
#include "storage/segment.h"

namespace wasmq::storage {

Status PartitionLog::roll_locked() {
  auto& active = segments_.back();
  if (active->log_dirty || active->index_dirty) {
    auto log_file = active->log_file();
    if (!log_file.is_ok())
      return io_failure("cannot open segment", active->log_path, log_file.status().message());
    auto index_file = active->index_file();
    if (!index_file.is_ok())
      return io_failure("cannot open index", active->index_path, index_file.status().message());
    if (::fdatasync((*log_file)->fd()) != 0 || ::fdatasync((*index_file)->fd()) != 0) {
      return io_failure("cannot sync", active->log_path, errno_text());
    }
    active->log_dirty = false;
    active->index_dirty = false;
  }
  auto created = create_segment(active->next_offset);
  if (!created.is_ok()) return created.status();
  segments_.push_back(*created);
  return Status::ok();
}

Result<AppendResult> PartitionLog::append(std::span<const Message> messages) {
  if (messages.empty()) return invalid_argument("nothing to append");
  EncodedBatch batch;
  encode_batch(0, messages, &batch.bytes);
  batch.records = static_cast<uint32_t>(messages.size());
  auto results = append_batches(std::span<EncodedBatch>(&batch, 1));
  return std::move(results.front());
}

std::vector<Result<AppendResult>> PartitionLog::append_batches(std::span<EncodedBatch> batches) {
  std::vector<Result<AppendResult>> results;
  results.reserve(batches.size());
  auto fail_rest = [&](const Status& status) {
    while (results.size() < batches.size()) results.emplace_back(status);
  };
  std::vector<std::shared_ptr<OpenFile>> held;  // keep descriptors open until the sync below
  int64_t end_offset = 0;
  {
    MutexLock lock(mutex_);
    if (closed_) {
      fail_rest(Status(StatusCode::kNotFound, label_ + ": the topic was deleted"));
      return results;
    }
    for (EncodedBatch& b : batches) {
      if (b.records == 0 || b.bytes.size() < kBatchHeaderSize) {
        fail_rest(invalid_argument("nothing to append"));
        return results;
      }
      if (b.bytes.size() > UINT32_MAX / 2) {
        fail_rest(Status(StatusCode::kLimitExceeded, "batch of " + std::to_string(b.bytes.size()) +
                                                         " bytes is too large for one segment"));
        return results;
      }
      const int64_t base = segments_.back()->next_offset;
      // The base offset: the first 8 bytes, big-endian, outside the CRC.
      for (int i = 0; i < 8; ++i) b.bytes[i] = static_cast<char>(static_cast<uint64_t>(base) >> (56 - 8 * i));
      // A new segment also when the offsets would pass what the index can hold relative to the
      // base (only a log recovered with huge skipped stretches gets near it).
      if (segments_.back()->size > 0 &&
          (segments_.back()->size + b.bytes.size() > options_.segment_bytes ||
           base + int64_t{b.records} > segments_.back()->offset_limit())) {
        if (Status s = roll_locked(); !s.is_ok()) {
          fail_rest(s);
          break;
        }
      }
      Segment& active = *segments_.back();
      auto log_file = active.log_file();
      if (!log_file.is_ok()) {
        fail_rest(io_failure("cannot open segment", active.log_path, log_file.status().message()));
        break;
      }
      const uint64_t position = active.size;
      if (active.bytes_since_index >= options_.index_interval_bytes) {
        auto index_file = active.index_file();
        if (!index_file.is_ok()) {
          fail_rest(
              io_failure("cannot open index", active.index_path, index_file.status().message()));
          break;
        }
        Segment::IndexEntry e{static_cast<uint32_t>(base - active.base_offset),
                              static_cast<uint32_t>(position)};
        char bytes[kIndexEntrySize];
        put_u32_be(bytes, e.relative_offset);
        put_u32_be(bytes + 4, e.position);
        if (!pwrite_all((*index_file)->fd(), bytes, sizeof bytes,
                        active.index.size() * kIndexEntrySize)) {
          fail_rest(io_failure("cannot write index", active.index_path, errno_text()));
          break;
        }
        active.index.push_back(e);
        active.bytes_since_index = 0;
        active.index_dirty = true;
      }
      if (!pwrite_all((*log_file)->fd(), b.bytes.data(), b.bytes.size(), position)) {
        const std::string cause = errno_text();
        // Leave the file as it was: a partial batch must not stay behind.
        if (::ftruncate((*log_file)->fd(), static_cast<off_t>(position)) != 0) {
          fail_rest(io_failure("cannot append (and cannot undo the partial write)",
                               active.log_path, cause));
        } else {
          fail_rest(io_failure("cannot append", active.log_path, cause));
        }
        break;
      }
      if (active.time_indexed) {
        // maxTimestamp: bytes 35 to 43 of the header, big-endian.
        uint64_t max_timestamp = 0;
        for (int i = 0; i < 8; ++i) max_timestamp = (max_timestamp << 8) | static_cast<uint8_t>(b.bytes[35 + i]);
        active.note_time(position, base, static_cast<int64_t>(max_timestamp), b.bytes.size(),
                         options_.index_interval_bytes);
      }
      active.size += b.bytes.size();
      active.bytes_since_index += b.bytes.size();
      active.next_offset = base + int64_t{b.records};
      active.last_write_ms = wall_ms();
      active.log_dirty = true;
      if (!unsynced_) {
        unsynced_ = true;
        if (options_.fsync == FsyncPolicy::kInterval && options_.on_unsynced) options_.on_unsynced();
      }
      results.emplace_back(AppendResult{base, active.next_offset - 1});
      end_offset = active.next_offset;
      if (held.empty() || held.back() != *log_file) held.push_back(*log_file);
    }
  }
  if (options_.fsync == FsyncPolicy::kAlways && end_offset > 0) {
    if (Status s = sync_through(end_offset); !s.is_ok()) {
      // Written but not durable: none of them is acknowledged.
      for (auto& r : results) {
        if (r.is_ok()) r = s;
      }
    }
  }
  return results;
}

Status PartitionLog::sync_through(int64_t offset) {
  MutexLock sync_lock(sync_mutex_);
  if (durable_offset_ >= offset) return Status::ok();  // an fsync already covered it
  struct Dirty {
    std::shared_ptr<Segment> segment;
    bool log;
    bool index;
  };
  std::vector<Dirty> dirty;
  int64_t target;
  {
    MutexLock lock(mutex_);
    if (closed_) return Status::ok();
    target = segments_.back()->next_offset;
    for (auto& s : segments_) {
      if (s->log_dirty || s->index_dirty) {
        dirty.push_back({s, s->log_dirty, s->index_dirty});
        s->log_dirty = false;
        s->index_dirty = false;
      }
    }
    unsynced_ = false;
  }
  auto restore = [&] {
    MutexLock lock(mutex_);
    for (const auto& d : dirty) {
      d.segment->log_dirty |= d.log;
      d.segment->index_dirty |= d.index;
    }
    if (!unsynced_) {
      unsynced_ = true;
      if (options_.fsync == FsyncPolicy::kInterval && options_.on_unsynced) options_.on_unsynced();
    }
  };
  for (const auto& d : dirty) {
    for (bool is_log : {true, false}) {
      if (is_log ? !d.log : !d.index) continue;
      const fs::path& path = is_log ? d.segment->log_path : d.segment->index_path;
      // Through the cache: the descriptor that wrote may have been closed since; fdatasync on a
      // new one covers the file's pages all the same.
      auto file = is_log ? d.segment->log_file() : d.segment->index_file();
      if (!file.is_ok() || ::fdatasync((*file)->fd()) != 0) {
        {
          MutexLock lock(mutex_);
          if (d.segment->removed || closed_) continue;  // deleted meanwhile: nothing to keep
        }
        const std::string cause = file.is_ok() ? errno_text() : file.status().message();
        restore();
        return io_failure("cannot sync", path, cause);
      }
    }
  }
  durable_offset_ = target;
  return Status::ok();
}

Status PartitionLog::flush() { return sync_through(next_offset()); }

}  // namespace wasmq::storage
