// PartitionLog's read path: a snapshot of the segments under the lock, `pread` outside it, and
// the quarantine of corruption that a read is the first to meet.
#include <algorithm>

#include "common/log.h"
#include "storage/partition_log.h"
#include "storage/segment.h"

namespace wasmq::storage {

Status PartitionLog::quarantine_for_read(const std::shared_ptr<Segment>& segment,
                                         uint64_t from_position, int64_t from_offset,
                                         uint64_t end_position) const {
  MutexLock repair_lock(repair_mutex_);
  auto file = segment->log_file();
  if (!file.is_ok())
    return io_failure("cannot open segment", segment->log_path, file.status().message());
  const int fd = (*file)->fd();
  std::vector<Segment::Quarantined> known;
  int64_t segment_end_offset;
  {
    MutexLock lock(mutex_);
    known = segment->corrupt;
    segment_end_offset = segment->next_offset;
  }
  // Walk with CRC checks from a batch start known to be right, to the first bad batch.
  std::vector<uint8_t> buffer;
  uint64_t position = from_position;
  int64_t expected = from_offset;
  while (position < end_position) {
    auto k = std::find_if(known.begin(), known.end(),
                          [&](const auto& q) { return q.position == position; });
    if (k != known.end()) {
      position = k->end_position;
      expected = k->end_offset;
      continue;
    }
    BatchHeader h;
    if (!good_batch_at(fd, position, end_position, expected, buffer, &h, true)) break;
    position += h.size();
    expected = h.next_offset();
  }
  if (position >= end_position) {
    return io_failure("cannot read", segment->log_path,
                      "a batch could not be read, but is not corrupt on disk: " + errno_text());
  }
  Segment::Quarantined q;
  auto header = header_at(fd, position, end_position);
  if (header && header->base_offset == expected &&
      good_batch_at(fd, position, end_position, expected, buffer, &*header)) {
    // A right CRC over records that do not decode: the header is what was written, and the
    // offsets after this batch were given from it; the stretch is this batch, no more.
    q = {position, position + header->size(), expected, header->next_offset()};
  } else {
    BatchHeader next;
    auto resume =
        find_next_batch(fd, position, end_position, expected, segment->offset_limit(), &next);
    q = {position, resume ? *resume : end_position, expected,
         resume ? next.base_offset : segment_end_offset};
  }
  const fs::path copy = dir_ / kQuarantineDir / segment->quarantine_name(q);
  std::error_code ec;
  fs::create_directories(dir_ / kQuarantineDir, ec);
  const bool kept = fs::exists(copy) || copy_bytes(fd, q.position, q.end_position, copy);
  {
    MutexLock lock(mutex_);
    segment->add_quarantined(q);
  }
  log::get("storage").warn(
      "{}: corrupt batch in {} at bytes {} to {}: offsets {} to {} (exclusive) are skipped; {}",
      label_, segment->log_path.string(), q.position, q.end_position, q.first_offset, q.end_offset,
      kept ? "its bytes are in " + copy.string() : "its bytes could not be copied aside");
  return Status::ok();
}

Status PartitionLog::walk(int64_t offset, const SkipFn& on_skip, const VisitFn& visit,
                          int64_t* log_start, int64_t* high_watermark) const {
  // What a walk may use of a segment, taken under the lock: the segment's state changes with
  // appends (its index grows), so nothing of it is touched outside the lock but these copies
  // and its immutable fields.
  struct View {
    std::shared_ptr<Segment> segment;
    uint64_t size;
    int64_t next_offset;
    uint64_t start_position;
    int64_t start_offset;
    std::vector<Segment::Quarantined> corrupt;
  };
  std::vector<View> views;
  {
    MutexLock lock(mutex_);
    if (closed_) return Status(StatusCode::kNotFound, label_ + ": the topic was deleted");
    *log_start = segments_.front()->base_offset;
    *high_watermark = segments_.back()->next_offset;
    for (const auto& s : segments_) {
      if (s->next_offset > offset) {
        auto [position, at] = s->position_for(std::max(offset, s->base_offset));
        views.push_back({s, s->size, s->next_offset, position, at, s->corrupt});
      }
    }
  }
  if (offset < *log_start || offset > *high_watermark) {
    return Status(StatusCode::kOutOfRange,
                  "offset " + std::to_string(offset) + " is out of range [" +
                      std::to_string(*log_start) + ", " + std::to_string(*high_watermark) + "]",
                  "offset");
  }
  bool visited = false;
  std::vector<uint8_t> batch;
  for (size_t i = 0; i < views.size(); ++i) {
    View& v = views[i];
    auto file = v.segment->log_file();
    if (!file.is_ok()) {
      {
        MutexLock lock(mutex_);
        if (v.segment->removed) {
          if (visited) return Status::ok();
          // Retention removed it since the snapshot: the log starts later now.
          return Status(StatusCode::kOutOfRange,
                        "offset " + std::to_string(offset) + " is out of range [" +
                            std::to_string(segments_.front()->base_offset) + ", " +
                            std::to_string(segments_.back()->next_offset) + "]",
                        "offset");
        }
      }
      return io_failure("cannot open segment", v.segment->log_path, file.status().message());
    }
    const int fd = (*file)->fd();
    int repairs = 0;
    uint64_t position = v.start_position;
    int64_t expected = v.start_offset;
    // Batches before `resume` were visited already (a walk that met corruption starts the
    // segment again after quarantining it).
    int64_t resume = v.start_offset;
    while (position < v.size) {
      if (const auto* q = [&]() -> const Segment::Quarantined* {
            for (const auto& c : v.corrupt) {
              if (c.position == position) return &c;
            }
            return nullptr;
          }()) {
        on_skip(q->first_offset, q->end_offset, true);
        position = q->end_position;
        expected = q->end_offset;
        continue;
      }
      auto header = header_at(fd, position, v.size);
      bool bad = !header || header->base_offset != expected;
      if (!bad && (header->next_offset() <= offset || header->next_offset() <= resume)) {
        position += header->size();
        expected = header->next_offset();
        continue;
      }
      Visit step = Visit::kNext;
      if (!bad) {
        batch.resize(header->size());
        if (!read_exact(fd, position, batch.data(), batch.size())) {
          return io_failure("cannot read", v.segment->log_path, errno_text());
        }
        step = visit(*header, batch);
        bad = step == Visit::kBad;
      }
      if (bad) {
        // Corruption nobody has met yet: find it exactly, quarantine it, and walk this segment
        // again from where this walk began in it (batches already visited are passed over).
        if (++repairs > 64) {
          return io_failure("cannot read", v.segment->log_path, "corruption keeps changing");
        }
        if (Status s = quarantine_for_read(v.segment, v.start_position, v.start_offset, v.size);
            !s.is_ok()) {
          return s;
        }
        {
          MutexLock lock(mutex_);
          v.corrupt = v.segment->corrupt;
        }
        resume = std::max(resume, expected);
        position = v.start_position;
        expected = v.start_offset;
        continue;
      }
      if (step == Visit::kStop) return Status::ok();
      visited = true;
      resume = header->next_offset();
      position += header->size();
      expected = header->next_offset();
    }
    // A gap left by a repaired segment: the next segment's first offset follows.
    if (i + 1 < views.size()) on_skip(expected, views[i + 1].segment->base_offset, false);
  }
  return Status::ok();
}

Result<ReadResult> PartitionLog::read(int64_t offset, size_t max_messages, size_t max_bytes) const {
  ReadResult result;
  result.next_offset = offset;
  size_t bytes = 0;
  std::vector<Record> records;
  auto skip = [&](int64_t first, int64_t end, bool corrupt) {
    first = std::max(first, result.next_offset);
    if (end <= first || result.records.size() >= max_messages) return;
    if (corrupt) result.skipped.push_back({first, end});
    result.next_offset = end;
  };
  auto visit = [&](const BatchHeader& header, std::vector<uint8_t>& batch) {
    if (result.records.size() >= max_messages) return Visit::kStop;
    if (!result.records.empty() && bytes + header.size() > max_bytes) return Visit::kStop;
    records.clear();
    if (!decode_batch(batch, &records).is_ok()) return Visit::kBad;
    bool took_all = true;
    for (auto& r : records) {
      if (r.offset < result.next_offset) continue;
      if (result.records.size() >= max_messages) {
        took_all = false;
        break;
      }
      result.next_offset = r.offset + 1;
      result.records.push_back(std::move(r));
    }
    // A batch's offsets run to its lastOffsetDelta even where no record is left (Kafka's
    // compaction leaves such batches): past it, so a reader in that hole moves on.
    if (took_all) result.next_offset = std::max(result.next_offset, header.next_offset());
    bytes += header.size();
    return bytes >= max_bytes || result.records.size() >= max_messages ? Visit::kStop : Visit::kNext;
  };
  if (Status s = walk(offset, skip, visit, &result.log_start_offset, &result.high_watermark);
      !s.is_ok()) {
    return s;
  }
  return result;
}

Result<BatchRead> PartitionLog::read_batches(int64_t offset, size_t max_bytes) const {
  BatchRead result;
  auto skip = [](int64_t, int64_t, bool) {};
  auto visit = [&](const BatchHeader& header, std::vector<uint8_t>& batch) {
    if (!result.bytes.empty() && result.bytes.size() + header.size() > max_bytes) return Visit::kStop;
    if (!batch_crc_ok(batch)) return Visit::kBad;
    result.bytes.append(reinterpret_cast<const char*>(batch.data()), batch.size());
    return Visit::kNext;
  };
  if (Status s = walk(offset, skip, visit, &result.log_start_offset, &result.high_watermark);
      !s.is_ok()) {
    return s;
  }
  return result;
}

Status PartitionLog::index_times(const std::shared_ptr<Segment>& segment) const {
  auto file = segment->log_file();
  if (!file.is_ok()) {
    MutexLock lock(mutex_);
    if (segment->removed) return Status::ok();  // retention took it: nothing to index
    return io_failure("cannot open segment", segment->log_path, file.status().message());
  }
  const int fd = (*file)->fd();
  // What the scan builds, installed once it reaches the segment's end.
  Segment built;
  built.base_offset = segment->base_offset;
  uint64_t position = 0;
  int64_t expected = segment->base_offset;
  bool unreadable = false;  // a bad batch no read has quarantined yet: the rest is unknown
  auto scan = [&](uint64_t end, const std::vector<Segment::Quarantined>& corrupt) {
    while (!unreadable && position < end) {
      auto q = std::find_if(corrupt.begin(), corrupt.end(),
                            [&](const auto& c) { return c.position == position; });
      if (q != corrupt.end()) {
        position = q->end_position;
        expected = q->end_offset;
        continue;
      }
      auto header = header_at(fd, position, end);
      if (!header || header->base_offset != expected) {
        unreadable = true;
        break;
      }
      built.note_time(position, header->base_offset, header->max_timestamp, header->size(),
                      options_.index_interval_bytes);
      position += header->size();
      expected = header->next_offset();
    }
  };
  uint64_t size;
  std::vector<Segment::Quarantined> corrupt;
  {
    MutexLock lock(mutex_);
    if (segment->time_indexed || segment->removed) return Status::ok();
    size = segment->size;
    corrupt = segment->corrupt;
  }
  scan(size, corrupt);
  MutexLock lock(mutex_);
  if (segment->time_indexed || segment->removed) return Status::ok();
  scan(segment->size, segment->corrupt);  // what was appended meanwhile: a few batches
  if (unreadable) {
    // Every later search starts no later than here; the walk from there meets the bad batch
    // and quarantines it.
    built.note_time(position, expected, INT64_MAX, 0, 0);
  }
  segment->time_index = std::move(built.time_index);
  segment->max_timestamp = built.max_timestamp;
  segment->bytes_since_time_entry = built.bytes_since_time_entry;
  segment->time_indexed = true;
  return Status::ok();
}

Result<std::optional<int64_t>> PartitionLog::time_search_start(int64_t timestamp) const {
  std::vector<std::shared_ptr<Segment>> unindexed;
  {
    MutexLock lock(mutex_);
    if (closed_) return Status(StatusCode::kNotFound, label_ + ": the topic was deleted");
    for (const auto& s : segments_) {
      if (!s->time_indexed) unindexed.push_back(s);
    }
  }
  for (const auto& s : unindexed) {
    if (Status st = index_times(s); !st.is_ok()) return st;
  }
  MutexLock lock(mutex_);
  for (const auto& s : segments_) {
    if (!s->time_indexed) return std::optional<int64_t>(s->base_offset);  // appeared meanwhile
    if (s->max_timestamp >= timestamp) return std::optional<int64_t>(s->time_search_offset(timestamp));
  }
  return std::optional<int64_t>();
}

Result<std::optional<TimeOffset>> PartitionLog::offset_for_time(int64_t timestamp) const {
  std::optional<TimeOffset> found;
  std::vector<Record> records;
  auto skip = [](int64_t, int64_t, bool) {};
  auto visit = [&](const BatchHeader& header, std::vector<uint8_t>& batch) {
    if (header.max_timestamp < timestamp) return Visit::kNext;
    records.clear();
    if (!decode_batch(batch, &records).is_ok()) return Visit::kBad;
    for (const auto& r : records) {
      if (r.message.timestamp >= timestamp) {
        found = TimeOffset{r.offset, r.message.timestamp};
        return Visit::kStop;
      }
    }
    return Visit::kNext;
  };
  auto from = time_search_start(timestamp);
  if (!from.is_ok()) return from.status();
  if (!*from) return found;  // every batch is older
  int64_t start = 0, end = 0;
  if (Status s = walk(**from, skip, visit, &start, &end); !s.is_ok()) {
    // Retention may have removed where the search starts: once more from the new start.
    if (s.code() != StatusCode::kOutOfRange) return s;
    if (Status again = walk(std::max(**from, this->start_offset()), skip, visit, &start, &end);
        !again.is_ok()) {
      return again;
    }
  }
  return found;
}

}  // namespace wasmq::storage
