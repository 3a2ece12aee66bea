#include "storage/partition_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "common/log.h"
#include "storage/segment.h"

namespace wasmq::storage {
namespace {

// The private file cache of a log opened without one (tests, tools).
constexpr size_t kPrivateCacheFiles = 16;

}  // namespace

PartitionLog::PartitionLog(fs::path dir, LogOptions options)
    : dir_(std::move(dir)),
      options_(std::move(options)),
      label_(dir_.parent_path().filename().string() + "/" + dir_.filename().string()) {}

PartitionLog::~PartitionLog() {
  MutexLock lock(mutex_);
  if (closed_) return;
  for (auto& s : segments_) {
    if (s->log_dirty) {
      if (auto f = s->log_file(); f.is_ok()) ::fdatasync((*f)->fd());
    }
    if (s->index_dirty) {
      if (auto f = s->index_file(); f.is_ok()) ::fdatasync((*f)->fd());
    }
  }
}

Status PartitionLog::io_failure(const std::string& what, const fs::path& path,
                                const std::string& cause) const {
  log::get("storage").error("{}: {} {}: {}", label_, what, path.string(), cause);
  return Status(StatusCode::kIo, label_ + ": " + what + ": " + cause);
}

Result<std::shared_ptr<PartitionLog::Segment>> PartitionLog::create_segment(int64_t base) {
  auto s = std::make_shared<Segment>();
  s->base_offset = base;
  s->next_offset = base;
  s->log_path = dir_ / segment_name(base, ".log");
  s->index_path = dir_ / segment_name(base, ".index");
  s->files = options_.files;
  s->key = options_.files->new_keys(2);
  s->last_write_ms = wall_ms();
  s->time_indexed = true;  // empty: its time index grows with its appends
  auto log_file = options_.files->acquire(s->key, s->log_path, O_RDWR | O_CREAT | O_EXCL);
  if (!log_file.is_ok()) {
    return io_failure("cannot create segment", s->log_path, log_file.status().message());
  }
  auto index_file = options_.files->acquire(s->key + 1, s->index_path, O_RDWR | O_CREAT | O_TRUNC);
  if (!index_file.is_ok()) {
    return io_failure("cannot create index", s->index_path, index_file.status().message());
  }
  // The new files' directory entries must survive a crash too.
  ScopedFd dir_fd{::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0 || ::fsync(dir_fd.fd) != 0) {
    return io_failure("cannot sync directory", dir_, errno_text());
  }
  return s;
}

Result<std::unique_ptr<PartitionLog>> PartitionLog::open(const fs::path& dir,
                                                         const LogOptions& options,
                                                         std::vector<std::string>* repairs) {
  LogOptions effective = options;
  if (!effective.files) effective.files = std::make_shared<FileCache>(kPrivateCacheFiles);
  std::unique_ptr<PartitionLog> log(new PartitionLog(dir, std::move(effective)));
  const LogOptions& opts = log->options_;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return log->io_failure("cannot create directory", dir, ec.message());

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
  if (ec) return log->io_failure("cannot list", dir, ec.message());
  std::sort(bases.begin(), bases.end());
  auto recorded = load_quarantine(dir);

  auto report = [&](const std::string& line) {
    if (repairs) repairs->push_back(dir.string() + ": " + line);
  };
  auto quarantine = [&](const Segment& s, int fd, const Quarantined& q) {
    const std::string name = s.quarantine_name(q);
    const fs::path copy = dir / kQuarantineDir / name;
    std::error_code ignored;
    fs::create_directories(dir / kQuarantineDir, ignored);
    const bool kept = fs::exists(copy) || copy_bytes(fd, q.position, q.end_position, copy);
    report("corrupt batch in " + segment_name(s.base_offset, ".log") + " at bytes " +
           std::to_string(q.position) + " to " + std::to_string(q.end_position) + ": offsets " +
           std::to_string(q.first_offset) + " to " + std::to_string(q.end_offset) +
           " (exclusive) are skipped; " +
           (kept ? "its bytes are in " + std::string(kQuarantineDir) + "/" + name
                 : "its bytes could not be copied aside: " + errno_text()));
  };

  for (size_t i = 0; i < bases.size(); ++i) {
    auto s = std::make_shared<Segment>();
    s->base_offset = bases[i];
    s->next_offset = bases[i];
    s->log_path = dir / segment_name(bases[i], ".log");
    s->index_path = dir / segment_name(bases[i], ".index");
    s->files = opts.files;
    s->key = opts.files->new_keys(2);
    const bool index_existed = fs::exists(s->index_path);
    // Recovery reads every segment once: plain descriptors, closed when it is done.
    ScopedFd log_fd{::open(s->log_path.c_str(), O_RDWR | O_CLOEXEC)};
    if (log_fd.fd < 0) return log->io_failure("cannot open segment", s->log_path, errno_text());
    ScopedFd index_fd{::open(s->index_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
    if (index_fd.fd < 0) return log->io_failure("cannot open index", s->index_path, errno_text());
    struct stat st;
    if (::fstat(log_fd.fd, &st) != 0)
      return log->io_failure("cannot stat", s->log_path, errno_text());
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    s->last_write_ms =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    const bool newest = i + 1 == bases.size();
    const std::string index_name = segment_name(s->base_offset, ".index");

    const bool index_ok = index_existed && load_index(*s, index_fd.fd, log_fd.fd, file_size);
    const auto loaded_index = s->index;
    // The newest segment is checked whole; an older one from its last index entry on, which
    // also re-adds that entry.
    uint64_t from = 0;
    int64_t from_offset = s->base_offset;
    if (!newest && index_ok && !s->index.empty()) {
      from = s->index.back().position;
      from_offset = s->base_offset + s->index.back().relative_offset;
      s->index.pop_back();
      s->bytes_since_index = opts.index_interval_bytes;
    } else {
      s->index.clear();
    }
    std::vector<Quarantined> found;
    static const std::vector<Quarantined> kNone;
    auto recorded_here = recorded.find(s->base_offset);
    ScanEnd end = scan(*s, log_fd.fd, from, from_offset, file_size, opts.index_interval_bytes,
                       newest ? -1 : bases[i + 1],
                       recorded_here == recorded.end() ? kNone : recorded_here->second, &found);
    for (const auto& q : found) quarantine(*s, log_fd.fd, q);
    s->size = end.good_end;
    // A bad tail that a read already reported as skipped (its offsets were given up): it stays
    // quarantined, so those offsets are never given again.
    const Quarantined* reported = nullptr;
    if (auto it = recorded.find(s->base_offset); it != recorded.end()) {
      for (const auto& q : it->second) {
        if (q.position == end.good_end && q.end_position <= file_size) reported = &q;
      }
    }
    if (end.good_end < file_size) {
      if (newest && !reported) {
        // A write that a crash interrupted: nothing after it was acknowledged.
        report("cut " + segment_name(s->base_offset, ".log") + " from " +
               std::to_string(file_size) + " to " + std::to_string(end.good_end) +
               " bytes: " + end.problem);
        if (::ftruncate(log_fd.fd, static_cast<off_t>(end.good_end)) != 0 ||
            ::fdatasync(log_fd.fd) != 0) {
          return log->io_failure("cannot truncate", s->log_path, errno_text());
        }
      } else {
        // An older segment was synced before the next one began: a bad tail is corruption, and
        // its offsets run to the next segment's base (or to where a read reported it ends).
        Quarantined q{end.good_end, file_size, s->next_offset,
                      reported ? std::max(s->next_offset, reported->end_offset)
                               : std::max(s->next_offset, bases[i + 1])};
        s->add_quarantined(q);
        quarantine(*s, log_fd.fd, q);
        s->next_offset = q.end_offset;
        s->size = file_size;
      }
    }
    // Stretches found by earlier runs before where this one looked.
    if (auto it = recorded.find(s->base_offset); it != recorded.end()) {
      for (const auto& q : it->second) {
        if (q.end_position <= from) s->add_quarantined(q);
      }
    }
    const bool index_changed =
        s->index.size() != loaded_index.size() ||
        !std::equal(s->index.begin(), s->index.end(), loaded_index.begin(),
                    [](const auto& a, const auto& b) {
                      return a.relative_offset == b.relative_offset && a.position == b.position;
                    });
    if (index_changed || !index_ok) {
      if (file_size > 0) {
        report(index_name +
               (!index_existed ? " missing"
                : !index_ok    ? " damaged"
                               : " behind its log") +
               ": rebuilt");
      }
      if (!rewrite_index(*s, index_fd.fd)) {
        return log->io_failure("cannot rewrite index", s->index_path, errno_text());
      }
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
    auto created = log->create_segment(0);
    if (!created.is_ok()) return created.status();
    log->segments_.push_back(*created);
  }
  log->durable_offset_ = log->segments_.back()->next_offset;
  return log;
}

int64_t PartitionLog::start_offset() const {
  MutexLock lock(mutex_);
  return segments_.front()->base_offset;
}

int64_t PartitionLog::next_offset() const {
  MutexLock lock(mutex_);
  return segments_.back()->next_offset;
}

uint64_t PartitionLog::size_bytes() const {
  MutexLock lock(mutex_);
  uint64_t total = 0;
  for (const auto& s : segments_) total += s->size;
  return total;
}

size_t PartitionLog::segment_count() const {
  MutexLock lock(mutex_);
  return segments_.size();
}

std::vector<CorruptRange> PartitionLog::corrupt_ranges() const {
  MutexLock lock(mutex_);
  std::vector<CorruptRange> out;
  for (const auto& s : segments_) {
    for (const auto& q : s->corrupt) {
      if (q.end_offset > q.first_offset) out.push_back({q.first_offset, q.end_offset});
    }
  }
  return out;
}

Result<size_t> PartitionLog::enforce_retention(int64_t now_ms) {
  std::vector<std::shared_ptr<Segment>> doomed;
  {
    MutexLock lock(mutex_);
    if (closed_) return size_t{0};
    uint64_t total = 0;
    for (const auto& s : segments_) total += s->size;
    while (segments_.size() > 1) {
      const Segment& oldest = *segments_.front();
      // Subtraction that cannot overflow: retention_ms may be anything up to INT64_MAX.
      bool too_old = options_.retention_ms >= 0 && now_ms > oldest.last_write_ms &&
                     static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(oldest.last_write_ms) >
                         static_cast<uint64_t>(options_.retention_ms);
      bool too_big =
          options_.retention_bytes >= 0 && total > static_cast<uint64_t>(options_.retention_bytes);
      if (!too_old && !too_big) break;
      total -= oldest.size;
      segments_.front()->removed = true;
      doomed.push_back(segments_.front());
      segments_.erase(segments_.begin());
    }
  }
  // Readers holding a segment's descriptor keep it; unlinking is safe under them.
  std::error_code ec;
  for (const auto& s : doomed) {
    s->files->forget(s->key);
    s->files->forget(s->key + 1);
    fs::remove(s->log_path, ec);
    fs::remove(s->index_path, ec);
    for (const auto& q : s->corrupt) fs::remove(dir_ / kQuarantineDir / s->quarantine_name(q), ec);
  }
  return doomed.size();
}

void PartitionLog::close() {
  MutexLock lock(mutex_);
  closed_ = true;
  for (auto& s : segments_) {
    s->removed = true;
    s->files->forget(s->key);
    s->files->forget(s->key + 1);
  }
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
    case 3:
      h ^= uint32_t{p[i + 2]} << 16;
      [[fallthrough]];
    case 2:
      h ^= uint32_t{p[i + 1]} << 8;
      [[fallthrough]];
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
