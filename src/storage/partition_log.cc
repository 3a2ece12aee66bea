#include "storage/partition_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

namespace wasmq::storage {
namespace fs = std::filesystem;

namespace {

constexpr size_t kIndexEntrySize = 8;

Status io_error(const std::string& what, const fs::path& path) {
  return Status(StatusCode::kIo, what + " " + path.string() + ": " + std::strerror(errno));
}

std::string segment_name(int64_t base_offset, const char* extension) {
  char name[40];
  std::snprintf(name, sizeof name, "%020" PRId64 "%s", base_offset, extension);
  return name;
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool read_exact(int fd, uint64_t position, uint8_t* out, size_t size) {
  while (size > 0) {
    ssize_t n = ::pread(fd, out, size, static_cast<off_t>(position));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    position += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return true;
}

void put_u32_be(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (24 - 8 * i));
}

uint32_t get_u32_be(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

}  // namespace

struct PartitionLog::Segment {
  int64_t base_offset = 0;
  int64_t next_offset = 0;  // one past the last record
  int64_t max_timestamp = -1;
  uint64_t size = 0;        // bytes of whole batches in the log file
  uint64_t bytes_since_index = 0;
  struct IndexEntry {
    uint32_t relative_offset;
    uint32_t position;
  };
  std::vector<IndexEntry> index;
  fs::path log_path;
  fs::path index_path;
  int log_fd = -1;
  int index_fd = -1;
  bool dirty = false;  // written since the last fsync

  ~Segment() {
    if (log_fd >= 0) ::close(log_fd);
    if (index_fd >= 0) ::close(index_fd);
  }

  // Position of the last index entry at or before `offset` (0 when none).
  uint64_t position_for(int64_t offset) const {
    auto it = std::upper_bound(index.begin(), index.end(), offset - base_offset,
                               [](int64_t rel, const IndexEntry& e) { return rel < e.relative_offset; });
    return it == index.begin() ? 0 : std::prev(it)->position;
  }

  Status append_index_entry(int64_t offset, uint64_t position) {
    IndexEntry e{static_cast<uint32_t>(offset - base_offset), static_cast<uint32_t>(position)};
    char bytes[kIndexEntrySize];
    put_u32_be(bytes, e.relative_offset);
    put_u32_be(bytes + 4, e.position);
    if (!write_all(index_fd, bytes, sizeof bytes)) return io_error("cannot write index", index_path);
    index.push_back(e);
    bytes_since_index = 0;
    return Status::ok();
  }

  // Rewrites the index file from `index`.
  Status rewrite_index() {
    std::string bytes(index.size() * kIndexEntrySize, '\0');
    for (size_t i = 0; i < index.size(); ++i) {
      put_u32_be(bytes.data() + i * kIndexEntrySize, index[i].relative_offset);
      put_u32_be(bytes.data() + i * kIndexEntrySize + 4, index[i].position);
    }
    if (::ftruncate(index_fd, 0) != 0 || ::lseek(index_fd, 0, SEEK_SET) < 0 ||
        !write_all(index_fd, bytes.data(), bytes.size()) || ::fdatasync(index_fd) != 0) {
      return io_error("cannot rewrite index", index_path);
    }
    return Status::ok();
  }

  // Reads the batch header at `position`; nullopt when the bytes there are not a whole,
  // well-formed batch inside `file_size`.
  std::optional<BatchHeader> header_at(uint64_t position, uint64_t file_size) const {
    if (file_size - position < kBatchHeaderSize) return std::nullopt;
    uint8_t bytes[kBatchHeaderSize];
    if (!read_exact(log_fd, position, bytes, sizeof bytes)) return std::nullopt;
    auto header = parse_batch_header(bytes);
    if (!header.is_ok() || header->size() > file_size - position) return std::nullopt;
    return header.value();
  }

  // Scans batches from `position` with `expected_offset` to the end of the file, checking length,
  // header, offsets and CRC; stops at the first bad batch. Rebuilds index entries past
  // `position` on the way. Returns the position where the good data ends.
  uint64_t scan(uint64_t position, int64_t expected_offset, uint64_t file_size,
                uint32_t index_interval, std::string* problem) {
    std::vector<uint8_t> batch;
    next_offset = expected_offset;
    while (position < file_size) {
      auto header = header_at(position, file_size);
      if (!header) {
        *problem = "torn or malformed batch at byte " + std::to_string(position);
        return position;
      }
      if (header->base_offset < expected_offset) {
        *problem = "batch at byte " + std::to_string(position) + " goes back to offset " +
                   std::to_string(header->base_offset);
        return position;
      }
      batch.resize(header->size());
      if (!read_exact(log_fd, position, batch.data(), batch.size()) || !batch_crc_ok(batch)) {
        *problem = "CRC mismatch in the batch at byte " + std::to_string(position);
        return position;
      }
      // The same rule as append(): an entry once a full interval of log lies behind the last.
      if (bytes_since_index >= index_interval) {
        index.push_back({static_cast<uint32_t>(header->base_offset - base_offset),
                         static_cast<uint32_t>(position)});
        bytes_since_index = 0;
      }
      bytes_since_index += header->size();
      max_timestamp = std::max(max_timestamp, header->max_timestamp);
      expected_offset = header->next_offset();
      next_offset = expected_offset;
      position += header->size();
    }
    return position;
  }
};

PartitionLog::PartitionLog(fs::path dir, LogOptions options)
    : dir_(std::move(dir)), options_(options) {}

PartitionLog::~PartitionLog() {
  std::lock_guard lock(mutex_);
  for (auto& s : segments_) {
    if (s->dirty) {
      ::fdatasync(s->log_fd);
      ::fdatasync(s->index_fd);
    }
  }
}

namespace {

Result<std::shared_ptr<PartitionLog::Segment>> open_segment(const fs::path& dir, int64_t base,
                                                            bool create) {
  auto s = std::make_shared<PartitionLog::Segment>();
  s->base_offset = base;
  s->next_offset = base;
  s->log_path = dir / segment_name(base, ".log");
  s->index_path = dir / segment_name(base, ".index");
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  s->log_fd = ::open(s->log_path.c_str(), flags, 0644);
  if (s->log_fd < 0) return io_error("cannot open segment", s->log_path);
  s->index_fd = ::open(s->index_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->index_fd < 0) return io_error("cannot open index", s->index_path);
  if (create) {
    // The new files' directory entries must survive a crash too.
    int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
      if (dir_fd >= 0) ::close(dir_fd);
      return io_error("cannot sync directory", dir);
    }
    ::close(dir_fd);
  }
  return s;
}

// Loads `.index` into memory; false when it is absent, unreadable or inconsistent.
bool load_index(PartitionLog::Segment& s, uint64_t file_size) {
  struct stat st;
  if (::fstat(s.index_fd, &st) != 0 || st.st_size % kIndexEntrySize != 0) return false;
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (!bytes.empty() && !read_exact(s.index_fd, 0, bytes.data(), bytes.size())) return false;
  s.index.clear();
  for (size_t i = 0; i < bytes.size(); i += kIndexEntrySize) {
    PartitionLog::Segment::IndexEntry e{get_u32_be(&bytes[i]), get_u32_be(&bytes[i + 4])};
    if (e.position >= file_size ||
        (!s.index.empty() && (e.relative_offset <= s.index.back().relative_offset ||
                              e.position <= s.index.back().position))) {
      return false;
    }
    s.index.push_back(e);
  }
  // The entries must point at batches that start where they say.
  for (const auto& e : s.index) {
    auto header = s.header_at(e.position, file_size);
    if (!header || header->base_offset != s.base_offset + e.relative_offset) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<PartitionLog>> PartitionLog::open(const fs::path& dir,
                                                         const LogOptions& options,
                                                         std::vector<std::string>* repairs) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kIo, "cannot create " + dir.string() + ": " + ec.message());
  std::unique_ptr<PartitionLog> log(new PartitionLog(dir, options));

  std::vector<int64_t> bases;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() == ".log") {
      const std::string stem = p.stem().string();
      if (stem.size() == 20 && std::all_of(stem.begin(), stem.end(), ::isdigit)) {
        bases.push_back(std::stoll(stem));
      }
    } else if (p.extension() == ".index" && !fs::exists(fs::path(p).replace_extension(".log"))) {
      fs::remove(p, ec);  // an index whose segment is gone
    }
  }
  if (ec) return Status(StatusCode::kIo, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(bases.begin(), bases.end());

  auto report = [&](const std::string& line) {
    if (repairs) repairs->push_back(dir.string() + ": " + line);
  };

  for (size_t i = 0; i < bases.size(); ++i) {
    const bool index_existed = fs::exists(dir / segment_name(bases[i], ".index"));
    auto opened = open_segment(dir, bases[i], false);
    if (!opened.is_ok()) return opened.status();
    auto s = *opened;
    struct stat st;
    if (::fstat(s->log_fd, &st) != 0) return io_error("cannot stat", s->log_path);
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    const bool newest = i + 1 == bases.size();
    const std::string index_name = segment_name(s->base_offset, ".index");

    const bool index_ok = index_existed && load_index(*s, file_size);
    const auto loaded_index = s->index;
    // The newest segment is checked whole; an older one from its last index entry on, which
    // also re-adds that entry.
    uint64_t from = 0;
    if (!newest && index_ok && !s->index.empty()) {
      from = s->index.back().position;
      // Timestamps before `from` are only in the batch headers: read them, not the batches.
      for (uint64_t p = 0; p < from;) {
        auto h = s->header_at(p, file_size);
        if (!h) break;
        s->max_timestamp = std::max(s->max_timestamp, h->max_timestamp);
        p += h->size();
      }
      s->index.pop_back();
      s->bytes_since_index = options.index_interval_bytes;
    } else {
      s->index.clear();
    }
    const int64_t from_offset =
        from == 0 ? s->base_offset : s->base_offset + loaded_index.back().relative_offset;
    std::string problem;
    uint64_t good = s->scan(from, from_offset, file_size, options.index_interval_bytes, &problem);
    if (good < file_size) {
      report("cut " + segment_name(s->base_offset, ".log") + " from " + std::to_string(file_size) +
             " to " + std::to_string(good) + " bytes: " + problem);
      if (::ftruncate(s->log_fd, static_cast<off_t>(good)) != 0 || ::fdatasync(s->log_fd) != 0) {
        return io_error("cannot truncate", s->log_path);
      }
    }
    s->size = good;
    const bool index_changed =
        s->index.size() != loaded_index.size() ||
        !std::equal(s->index.begin(), s->index.end(), loaded_index.begin(),
                    [](const auto& a, const auto& b) {
                      return a.relative_offset == b.relative_offset && a.position == b.position;
                    });
    if (index_changed || !index_ok) {
      if (file_size > 0) {
        report(index_name + (!index_existed ? " missing" : !index_ok ? " damaged" : " behind its log") +
               ": rebuilt");
      }
      if (Status st2 = s->rewrite_index(); !st2.is_ok()) return st2;
    }
    if (::lseek(s->log_fd, static_cast<off_t>(s->size), SEEK_SET) < 0 ||
        ::lseek(s->index_fd, 0, SEEK_END) < 0) {
      return io_error("cannot seek", s->log_path);
    }
    if (!log->segments_.empty() && s->base_offset < log->segments_.back()->next_offset) {
      report("removed " + segment_name(s->base_offset, ".log") +
             ": it overlaps the segment before it");
      fs::remove(s->log_path, ec);
      fs::remove(s->index_path, ec);
      continue;
    }
    if (s->size == 0 && !newest) {
      report("removed empty segment " + segment_name(s->base_offset, ".log"));
      fs::remove(s->log_path, ec);
      fs::remove(s->index_path, ec);
      continue;
    }
    log->segments_.push_back(std::move(s));
  }

  if (log->segments_.empty()) {
    auto created = open_segment(dir, 0, true);
    if (!created.is_ok()) return created.status();
    log->segments_.push_back(*created);
  }
  log->durable_offset_ = log->segments_.back()->next_offset;
  return log;
}

Status PartitionLog::roll_locked() {
  auto& active = segments_.back();
  if (::fdatasync(active->log_fd) != 0 || ::fdatasync(active->index_fd) != 0) {
    return io_error("cannot sync", active->log_path);
  }
  active->dirty = false;
  auto created = open_segment(dir_, active->next_offset, true);
  if (!created.is_ok()) return created.status();
  segments_.push_back(*created);
  return Status::ok();
}

Result<AppendResult> PartitionLog::append(std::span<const Message> messages) {
  if (messages.empty()) return invalid_argument("nothing to append");
  std::string batch;
  AppendResult result;
  {
    std::lock_guard lock(mutex_);
    const int64_t base = segments_.back()->next_offset;
    encode_batch(base, messages, &batch);
    if (batch.size() > UINT32_MAX / 2) {
      return Status(StatusCode::kLimitExceeded, "batch of " + std::to_string(batch.size()) +
                                                    " bytes is too large for one segment");
    }
    if (segments_.back()->size > 0 &&
        segments_.back()->size + batch.size() > options_.segment_bytes) {
      if (Status s = roll_locked(); !s.is_ok()) return s;
    }
    Segment& active = *segments_.back();
    const uint64_t position = active.size;
    if (active.bytes_since_index >= options_.index_interval_bytes) {
      if (Status s = active.append_index_entry(base, position); !s.is_ok()) return s;
    }
    if (!write_all(active.log_fd, batch.data(), batch.size())) {
      Status failed = io_error("cannot append to", active.log_path);
      // Leave the file as it was: a partial batch must not stay behind.
      if (::ftruncate(active.log_fd, static_cast<off_t>(position)) != 0 ||
          ::lseek(active.log_fd, static_cast<off_t>(position), SEEK_SET) < 0) {
        return Status(StatusCode::kIo, failed.message() + " (and cannot undo the partial write)");
      }
      return failed;
    }
    active.size += batch.size();
    active.bytes_since_index += batch.size();
    active.next_offset = base + static_cast<int64_t>(messages.size());
    for (const auto& m : messages) active.max_timestamp = std::max(active.max_timestamp, m.timestamp);
    active.dirty = true;
    result = {base, active.next_offset - 1};
  }
  if (options_.fsync == FsyncPolicy::kAlways) {
    if (Status s = sync_through(result.last_offset + 1); !s.is_ok()) return s;
  }
  return result;
}

Status PartitionLog::sync_through(int64_t offset) {
  std::lock_guard sync_lock(sync_mutex_);
  if (durable_offset_ >= offset) return Status::ok();  // an fsync already covered it
  std::vector<std::shared_ptr<Segment>> dirty;
  int64_t target;
  {
    std::lock_guard lock(mutex_);
    target = segments_.back()->next_offset;
    for (auto& s : segments_) {
      if (s->dirty) {
        dirty.push_back(s);
        s->dirty = false;
      }
    }
  }
  for (auto& s : dirty) {
    if (::fdatasync(s->log_fd) != 0 || ::fdatasync(s->index_fd) != 0) {
      std::lock_guard lock(mutex_);
      s->dirty = true;
      return io_error("cannot sync", s->log_path);
    }
  }
  durable_offset_ = target;
  return Status::ok();
}

Status PartitionLog::flush() { return sync_through(next_offset()); }

Result<ReadResult> PartitionLog::read(int64_t offset, size_t max_messages, size_t max_bytes) const {
  ReadResult result;
  std::vector<std::shared_ptr<Segment>> segments;
  std::vector<std::pair<uint64_t, int64_t>> extents;  // (size, next_offset) snapshot per segment
  {
    std::lock_guard lock(mutex_);
    result.log_start_offset = segments_.front()->base_offset;
    result.high_watermark = segments_.back()->next_offset;
    for (const auto& s : segments_) {
      if (s->next_offset > offset) {
        segments.push_back(s);
        extents.emplace_back(s->size, s->next_offset);
      }
    }
  }
  if (offset < result.log_start_offset || offset > result.high_watermark) {
    return Status(StatusCode::kNotFound,
                  "offset " + std::to_string(offset) + " is out of range [" +
                      std::to_string(result.log_start_offset) + ", " +
                      std::to_string(result.high_watermark) + "]");
  }
  result.next_offset = offset;
  size_t bytes = 0;
  std::vector<uint8_t> batch;
  std::vector<Record> records;
  for (size_t i = 0; i < segments.size() && result.records.size() < max_messages; ++i) {
    const Segment& s = *segments[i];
    const uint64_t size = extents[i].first;
    uint64_t position = s.position_for(result.next_offset);
    while (position < size && result.records.size() < max_messages) {
      auto header = s.header_at(position, size);
      if (!header) return Status(StatusCode::kIo, "unreadable batch in " + s.log_path.string());
      if (header->next_offset() <= result.next_offset) {
        position += header->size();
        continue;
      }
      if (!result.records.empty() && bytes + header->size() > max_bytes) {
        return result;
      }
      batch.resize(header->size());
      if (!read_exact(s.log_fd, position, batch.data(), batch.size())) {
        return Status(StatusCode::kIo, "cannot read " + s.log_path.string());
      }
      records.clear();
      if (Status st = decode_batch(batch, &records); !st.is_ok()) {
        return st.with_context(s.log_path.string() + " at byte " + std::to_string(position));
      }
      for (auto& r : records) {
        if (r.offset < result.next_offset) continue;
        if (result.records.size() >= max_messages) break;
        result.next_offset = r.offset + 1;
        result.records.push_back(std::move(r));
      }
      bytes += header->size();
      position += header->size();
      if (bytes >= max_bytes) return result;
    }
    // A gap left by a repaired segment: continue at the next segment's first offset.
    if (i + 1 < segments.size() && result.next_offset < segments[i + 1]->base_offset &&
        result.records.size() < max_messages) {
      result.next_offset = segments[i + 1]->base_offset;
    }
  }
  return result;
}

int64_t PartitionLog::start_offset() const {
  std::lock_guard lock(mutex_);
  return segments_.front()->base_offset;
}

int64_t PartitionLog::next_offset() const {
  std::lock_guard lock(mutex_);
  return segments_.back()->next_offset;
}

uint64_t PartitionLog::size_bytes() const {
  std::lock_guard lock(mutex_);
  uint64_t total = 0;
  for (const auto& s : segments_) total += s->size;
  return total;
}

size_t PartitionLog::segment_count() const {
  std::lock_guard lock(mutex_);
  return segments_.size();
}

Result<size_t> PartitionLog::enforce_retention(int64_t now_ms) {
  std::vector<std::shared_ptr<Segment>> doomed;
  {
    std::lock_guard lock(mutex_);
    uint64_t total = 0;
    for (const auto& s : segments_) total += s->size;
    while (segments_.size() > 1) {
      const Segment& oldest = *segments_.front();
      bool too_old = options_.retention_ms >= 0 && oldest.max_timestamp >= 0 &&
                     oldest.max_timestamp < now_ms - options_.retention_ms;
      bool too_big = options_.retention_bytes >= 0 &&
                     total > static_cast<uint64_t>(options_.retention_bytes);
      if (!too_old && !too_big) break;
      total -= oldest.size;
      doomed.push_back(segments_.front());
      segments_.erase(segments_.begin());
    }
  }
  // Readers holding a segment keep its open descriptors; unlinking is safe under them.
  std::error_code ec;
  for (const auto& s : doomed) {
    fs::remove(s->log_path, ec);
    fs::remove(s->index_path, ec);
  }
  return doomed.size();
}

int32_t kafka_murmur2(std::string_view data) {
  const uint32_t seed = 0x9747b28c;
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const size_t length = data.size();
  uint32_t h = seed ^ static_cast<uint32_t>(length);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t i = 0;
  for (; i + 4 <= length; i += 4) {
    uint32_t k = uint32_t{p[i]} | uint32_t{p[i + 1]} << 8 | uint32_t{p[i + 2]} << 16 |
                 uint32_t{p[i + 3]} << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
    case 3: h ^= uint32_t{p[i + 2]} << 16; [[fallthrough]];
    case 2: h ^= uint32_t{p[i + 1]} << 8; [[fallthrough]];
    case 1:
      h ^= p[i];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

uint32_t partition_for_key(std::string_view key, uint32_t partitions) {
  // Kafka's toPositive: clear the sign bit (not abs, which fails for INT_MIN).
  uint32_t positive = static_cast<uint32_t>(kafka_murmur2(key)) & 0x7fffffff;
  return positive % partitions;
}

}  // namespace wasmq::storage
