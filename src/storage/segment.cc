#include "storage/segment.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace wasmq::storage {
namespace {

uint32_t get_u32_be(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

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

}  // namespace

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

std::optional<BatchHeader> header_at(int fd, uint64_t position, uint64_t end) {
  if (position > end || end - position < kBatchHeaderSize) return std::nullopt;
  uint8_t bytes[kBatchHeaderSize];
  if (!read_exact(fd, position, bytes, sizeof bytes)) return std::nullopt;
  auto header = parse_batch_header(bytes);
  if (!header.is_ok() || header->size() > end - position) return std::nullopt;
  return header.value();
}

bool good_batch_at(int fd, uint64_t position, uint64_t end, int64_t expected,
                   std::vector<uint8_t>& buffer, BatchHeader* out, bool decode_records) {
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

bool rewrite_index(const PartitionLog::Segment& s, int index_fd) {
  std::string bytes(s.index.size() * kIndexEntrySize, '\0');
  for (size_t i = 0; i < s.index.size(); ++i) {
    put_u32_be(bytes.data() + i * kIndexEntrySize, s.index[i].relative_offset);
    put_u32_be(bytes.data() + i * kIndexEntrySize + 4, s.index[i].position);
  }
  return ::ftruncate(index_fd, 0) == 0 && pwrite_all(index_fd, bytes.data(), bytes.size(), 0) &&
         ::fdatasync(index_fd) == 0;
}

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

}  // namespace wasmq::storage
