#include "storage/partition_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "common/log.h"

namespace wasmq::storage {
namespace fs = std::filesystem;

namespace {

constexpr size_t kIndexEntrySize = 8;
constexpr const char* kQuarantineDir = "quarantine";
// The private file cache of a log opened without one (tests, tools).
constexpr size_t kPrivateCacheFiles = 16;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string errno_text() { return std::strerror(errno); }

std::string segment_name(int64_t base_offset, const char* extension) {
  char name[40];
  std::snprintf(name, sizeof name, "%020" PRId64 "%s", base_offset, extension);
  return name;
}

bool pwrite_all(int fd, const char* data, size_t size, uint64_t position) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(position));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
    position += static_cast<uint64_t>(n);
  }
  return true;
}

bool read_exact(int fd, uint64_t position, uint8_t* out, size_t size) {
  while (size > 0) {
    ssize_t n = ::pread(fd, out, size, static_cast<off_t>(position));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // the file is shorter than it should be
      return false;
    }
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

// Closes a descriptor opened for recovery when it goes out of scope.
struct ScopedFd {
  int fd = -1;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};

// The batch header at `position`; nullopt when the bytes there are not a whole, well-formed
// batch header whose batch fits before `end`.
std::optional<BatchHeader> header_at(int fd, uint64_t position, uint64_t end) {
  if (position > end || end - position < kBatchHeaderSize) return std::nullopt;
  uint8_t bytes[kBatchHeaderSize];
  if (!read_exact(fd, position, bytes, sizeof bytes)) return std::nullopt;
  auto header = parse_batch_header(bytes);
  if (!header.is_ok() || header->size() > end - position) return std::nullopt;
  return header.value();
}

// True when a whole batch with a good CRC and the base offset `expected` starts at `position`
// (within a segment batches follow each other without gaps; the base offset is outside the
// CRC, so this is what catches a damaged one); its header goes to `out`.
// With `decode_records`, the records must decode too: a batch whose CRC is right but whose
// records do not (a writer's bug, or bytes forged with a valid CRC) fails every read, so the
// paths that look for what a read can serve count it as bad. Recovery's scan at start leaves
// that out (it would decode every batch of the active segment); a read that meets such a batch
// quarantines it through those paths.
bool good_batch_at(int fd, uint64_t position, uint64_t end, int64_t expected,
                   std::vector<uint8_t>& buffer, BatchHeader* out, bool decode_records = false) {
  auto header = header_at(fd, position, end);
  if (!header || header->base_offset != expected) return false;
  buffer.resize(header->size());
  if (!read_exact(fd, position, buffer.data(), buffer.size()) || !batch_crc_ok(buffer)) {
    return false;
  }
  if (decode_records) {
    std::vector<Record> records;
    if (!decode_batch(buffer, &records).is_ok()) return false;
  }
  *out = *header;
  return true;
}

// The first position after the bad stretch that starts at `bad` (before `end`) where a good
// batch starts, byte by byte: a damaged length field says nothing about where the next batch
// is. Its base offset must lie between `min_offset` and `min_offset` plus the bytes skipped
// (every record takes at least a byte), so that a batch hidden in a message's value cannot move
// the offsets anywhere; its offsets must end within `offset_limit`. Reads in windows, so memory
// stays small whatever the segment's size.
std::optional<uint64_t> find_next_batch(int fd, uint64_t bad, uint64_t end, int64_t min_offset,
                                        int64_t offset_limit, BatchHeader* header) {
  const uint64_t from = bad + 1;
  constexpr size_t kWindow = 64 * 1024;
  constexpr size_t kMagicAt = 16;  // baseOffset 8 + batchLength 4 + partitionLeaderEpoch 4
  std::vector<uint8_t> window;
  std::vector<uint8_t> batch;
  uint64_t window_start = from;
  for (uint64_t q = from; q < end && end - q >= kBatchHeaderSize; ++q) {
    if (q < window_start || q + kBatchHeaderSize > window_start + window.size()) {
      window_start = q;
      window.resize(static_cast<size_t>(std::min<uint64_t>(kWindow, end - q)));
      if (!read_exact(fd, q, window.data(), window.size())) return std::nullopt;
    }
    const uint8_t* p = window.data() + (q - window_start);
    if (p[kMagicAt] != 2) continue;
    auto parsed = parse_batch_header(std::span<const uint8_t>(p, kBatchHeaderSize));
    if (!parsed.is_ok() || parsed->base_offset < min_offset ||
        static_cast<uint64_t>(parsed->base_offset - min_offset) > q - bad ||
        parsed->size() > end - q || parsed->next_offset() > offset_limit) {
      continue;
    }
    if (good_batch_at(fd, q, end, parsed->base_offset, batch, header, true)) return q;
  }
  return std::nullopt;
}

// Copies bytes [from, to) of `fd` to `dest` (through a temporary file and a rename).
bool copy_bytes(int fd, uint64_t from, uint64_t to, const fs::path& dest) {
  const fs::path tmp = fs::path(dest).concat(".tmp");
  ScopedFd out{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (out.fd < 0) return false;
  std::vector<uint8_t> buffer(1 << 20);
  uint64_t written = 0;
  for (uint64_t p = from; p < to;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), to - p));
    if (!read_exact(fd, p, buffer.data(), n) ||
        !pwrite_all(out.fd, reinterpret_cast<const char*>(buffer.data()), n, written)) {
      return false;
    }
    p += n;
    written += n;
  }
  if (::fdatasync(out.fd) != 0) return false;
  std::error_code ec;
  fs::rename(tmp, dest, ec);
  return !ec;
}

}  // namespace

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

  int64_t base_offset = 0;
  int64_t next_offset = 0;  // one past the last record
  uint64_t size = 0;        // bytes of whole batches (and quarantined stretches) in the file
  uint64_t bytes_since_index = 0;
  int64_t last_write_ms = 0;  // the broker's clock at the last write (for retention by time)
  std::vector<IndexEntry> index;
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

namespace {

using Quarantined = PartitionLog::Segment::Quarantined;

struct ScanEnd {
  uint64_t good_end = 0;  // where the good data ends: the file's size when nothing is wrong
  std::string problem;    // why it ends early
};

// The smallest a record can be in a batch: length, attributes, timestamp and offset deltas, key
// and value lengths and header count, one byte each.
constexpr uint64_t kMinRecordBytes = 7;

// The end of a whole batch at `position` whose CRC is bad: one whose length field and magic
// byte say a batch starts there and fits before `file_size`. Nullopt when the bytes there are
// not that (a torn write, garbage).
std::optional<uint64_t> damaged_batch_end(const uint8_t* header, uint64_t position,
                                          uint64_t file_size) {
  const int32_t length = static_cast<int32_t>(get_u32_be(header + 8));
  if (header[16] != 2 || length < static_cast<int32_t>(kBatchHeaderSize - kBatchLogOverhead) ||
      kBatchLogOverhead + static_cast<uint64_t>(length) > file_size - position) {
    return std::nullopt;
  }
  return position + kBatchLogOverhead + static_cast<uint64_t>(length);
}

// How many offsets a whole batch with a bad CRC covers, from `first` on, judged from its header
// bytes (the record count and the last offset delta lie inside what the CRC covers, so either
// may be the damaged field): the larger of the two, but no more records than its bytes can
// hold and no offset past the segment's limit. Erring high only leaves unused offsets; erring
// low would give offsets that readers have seen to new messages.
int64_t offsets_in_damaged_batch(const uint8_t* header, uint64_t size, int64_t first,
                                 int64_t limit) {
  const int64_t delta = static_cast<int32_t>(get_u32_be(header + 23));
  const int64_t count = static_cast<int32_t>(get_u32_be(header + 57));
  const int64_t claimed = std::max(delta + 1, count);
  const int64_t most =
      static_cast<int64_t>(std::max<uint64_t>(1, (size - kBatchHeaderSize) / kMinRecordBytes));
  return std::max<int64_t>(1, std::min({claimed, most, limit - first}));
}

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
             const std::vector<Quarantined>& recorded, std::vector<Quarantined>* found) {
  std::vector<uint8_t> buffer;
  s.next_offset = expected;
  auto skip = [&](const Quarantined& q) {
    // No index entry points into a bad stretch; its bytes count towards the next one.
    s.bytes_since_index += q.end_position - q.position;
    s.add_quarantined(q);
    found->push_back(q);
    expected = q.end_offset;
    s.next_offset = expected;
    position = q.end_position;
  };
  while (position < file_size) {
    auto known = std::find_if(recorded.begin(), recorded.end(), [&](const Quarantined& q) {
      return q.position == position && q.first_offset == expected && q.end_position <= file_size &&
             q.end_offset <= s.offset_limit();
    });
    if (known != recorded.end()) {
      skip(*known);
      continue;
    }
    BatchHeader h;
    if (good_batch_at(fd, position, file_size, expected, buffer, &h) &&
        h.next_offset() <= s.offset_limit()) {
      // The same rule as append(): an entry once a full interval of log lies behind the last.
      if (s.bytes_since_index >= index_interval) {
        s.index.push_back({static_cast<uint32_t>(h.base_offset - s.base_offset),
                           static_cast<uint32_t>(position)});
        s.bytes_since_index = 0;
      }
      s.bytes_since_index += h.size();
      expected = h.next_offset();
      s.next_offset = expected;
      position += h.size();
      continue;
    }
    BatchHeader next;
    if (auto resume = find_next_batch(fd, position, file_size, expected, s.offset_limit(), &next)) {
      skip({position, *resume, expected, next.base_offset});
      continue;
    }
    uint8_t header[kBatchHeaderSize];
    const bool has_header =
        file_size - position >= kBatchHeaderSize && read_exact(fd, position, header, sizeof header);
    auto damaged_end = has_header ? damaged_batch_end(header, position, file_size) : std::nullopt;
    if (damaged_end && expected < s.offset_limit()) {
      skip({position, *damaged_end, expected,
            next_base >= 0 ? std::max(expected, next_base)
                           : expected + offsets_in_damaged_batch(header, *damaged_end - position,
                                                                 expected, s.offset_limit())});
      continue;
    }
    return {position, damaged_end
                          ? "no offsets left in the segment at byte " + std::to_string(position)
                          : "torn or malformed batch at byte " + std::to_string(position)};
  }
  return {position, ""};
}

// Loads `.index` into memory; false when it is absent, unreadable or inconsistent.
bool load_index(PartitionLog::Segment& s, int index_fd, int log_fd, uint64_t file_size) {
  struct stat st;
  if (::fstat(index_fd, &st) != 0 || st.st_size % kIndexEntrySize != 0) return false;
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (!bytes.empty() && !read_exact(index_fd, 0, bytes.data(), bytes.size())) return false;
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
    auto header = header_at(log_fd, e.position, file_size);
    if (!header || header->base_offset != s.base_offset + e.relative_offset) return false;
  }
  return true;
}

// Rewrites the index file from `s.index`.
bool rewrite_index(const PartitionLog::Segment& s, int index_fd) {
  std::string bytes(s.index.size() * kIndexEntrySize, '\0');
  for (size_t i = 0; i < s.index.size(); ++i) {
    put_u32_be(bytes.data() + i * kIndexEntrySize, s.index[i].relative_offset);
    put_u32_be(bytes.data() + i * kIndexEntrySize + 4, s.index[i].position);
  }
  return ::ftruncate(index_fd, 0) == 0 && pwrite_all(index_fd, bytes.data(), bytes.size(), 0) &&
         ::fdatasync(index_fd) == 0;
}

// The quarantined stretches recorded by earlier runs, by segment base offset, from the names of
// the files in `<dir>/quarantine`.
std::map<int64_t, std::vector<Quarantined>> load_quarantine(const fs::path& dir) {
  std::map<int64_t, std::vector<Quarantined>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / kQuarantineDir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t base = 0;
    Quarantined q;
    int consumed = 0;
    if (std::sscanf(
            name.c_str(), "%20" SCNd64 "-%" SCNu64 "-%" SCNu64 "-%" SCNd64 "-%" SCNd64 ".corrupt%n",
            &base, &q.position, &q.end_position, &q.first_offset, &q.end_offset, &consumed) == 5 &&
        static_cast<size_t>(consumed) == name.size() && q.position < q.end_position &&
        base <= q.first_offset && q.first_offset <= q.end_offset) {
      out[base].push_back(q);
    }
  }
  return out;
}

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

Result<ReadResult> PartitionLog::read(int64_t offset, size_t max_messages, size_t max_bytes) const {
  ReadResult result;
  // What a read may use of a segment, taken under the lock: the segment's state changes with
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
  auto take_views = [&]() -> Status {
    MutexLock lock(mutex_);
    if (closed_) return Status(StatusCode::kNotFound, label_ + ": the topic was deleted");
    result.log_start_offset = segments_.front()->base_offset;
    result.high_watermark = segments_.back()->next_offset;
    views.clear();
    for (const auto& s : segments_) {
      if (s->next_offset > offset) {
        auto [position, at] = s->position_for(std::max(offset, s->base_offset));
        views.push_back({s, s->size, s->next_offset, position, at, s->corrupt});
      }
    }
    return Status::ok();
  };
  if (Status s = take_views(); !s.is_ok()) return s;
  if (offset < result.log_start_offset || offset > result.high_watermark) {
    return Status(StatusCode::kNotFound, "offset " + std::to_string(offset) + " is out of range [" +
                                             std::to_string(result.log_start_offset) + ", " +
                                             std::to_string(result.high_watermark) + "]");
  }
  result.next_offset = offset;
  size_t bytes = 0;
  std::vector<uint8_t> batch;
  std::vector<Record> records;
  auto skip = [&](int64_t first, int64_t end) {
    first = std::max(first, result.next_offset);
    if (end <= first) return;
    result.skipped.push_back({first, end});
    result.next_offset = end;
  };
  for (size_t i = 0; i < views.size() && result.records.size() < max_messages; ++i) {
    View& v = views[i];
    auto file = v.segment->log_file();
    if (!file.is_ok()) {
      {
        MutexLock lock(mutex_);
        if (v.segment->removed) {
          if (!result.records.empty()) return result;
          // Retention removed it since the snapshot: the log starts later now.
          return Status(StatusCode::kNotFound,
                        "offset " + std::to_string(result.next_offset) + " is out of range [" +
                            std::to_string(segments_.front()->base_offset) + ", " +
                            std::to_string(segments_.back()->next_offset) + "]");
        }
      }
      return io_failure("cannot open segment", v.segment->log_path, file.status().message());
    }
    const int fd = (*file)->fd();
    int repairs = 0;
    uint64_t position = v.start_position;
    int64_t expected = v.start_offset;
    while (position < v.size && result.records.size() < max_messages) {
      if (const auto* q = [&]() -> const Segment::Quarantined* {
            for (const auto& c : v.corrupt) {
              if (c.position == position) return &c;
            }
            return nullptr;
          }()) {
        skip(q->first_offset, q->end_offset);
        position = q->end_position;
        expected = q->end_offset;
        continue;
      }
      auto header = header_at(fd, position, v.size);
      bool bad = !header || header->base_offset != expected;
      if (!bad && header->next_offset() <= result.next_offset) {
        position += header->size();
        expected = header->next_offset();
        continue;
      }
      if (!bad) {
        if (!result.records.empty() && bytes + header->size() > max_bytes) return result;
        batch.resize(header->size());
        if (!read_exact(fd, position, batch.data(), batch.size())) {
          return io_failure("cannot read", v.segment->log_path, errno_text());
        }
        records.clear();
        bad = !decode_batch(batch, &records).is_ok();
      }
      if (bad) {
        // Corruption nobody has met yet: find it exactly, quarantine it, and read this segment
        // again from where this read began in it (records already taken are passed over).
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
        position = v.start_position;
        expected = v.start_offset;
        continue;
      }
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
      if (took_all) result.next_offset = std::max(result.next_offset, header->next_offset());
      bytes += header->size();
      position += header->size();
      expected = header->next_offset();
      if (bytes >= max_bytes) return result;
    }
    // A gap left by a repaired segment: continue at the next segment's first offset.
    if (i + 1 < views.size() && result.next_offset < views[i + 1].segment->base_offset &&
        result.records.size() < max_messages) {
      result.next_offset = views[i + 1].segment->base_offset;
    }
  }
  return result;
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
