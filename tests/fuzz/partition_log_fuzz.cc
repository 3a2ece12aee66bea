// Fuzzes the partition log's recovery reader (src/storage/partition_log.h): the input becomes the
// only segment file of a log directory, which is then opened (recovered), read, appended to and
// opened again. The first input byte chooses whether CRCs are made right first (batch_bytes.h).
//
// Invariants: no crash; recovery never keeps more bytes than the file had; every offset in
// [start, high watermark) that recovery kept reads back, in order; the recovered log takes an
// append at the high watermark and returns it; a second recovery cuts nothing and finds no new
// damage (it only reports again what is quarantined).
// Gaps found here and closed (their inputs stay in the corpus), reached only with rewritten CRCs:
//   S1, a batch whose CRC is right but whose records do not decode: the read that meets it
//   quarantines it and goes on, as for a CRC mismatch.
//   S2, offsets that jump past base offset + 2^32 inside one segment (the index's relative
//   offsets are 32 bits): recovery skips such a batch, and append starts a new segment first.
//   S3, a read in the offsets a batch covers past its last record: the read moves past the
//   batch.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "batch_bytes.h"
#include "fuzz_check.h"
#include "storage/partition_log.h"

using namespace wasmq;
namespace fs = std::filesystem;

namespace {

// One directory per process, on tmpfs when there is one: the target writes a file per input.
const fs::path& log_dir() {
  static const fs::path dir = [] {
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("wasmq-partition-log-fuzz-" + std::to_string(::getpid()));
    std::atexit([] { std::error_code ignored; fs::remove_all(log_dir(), ignored); });
    return d;
  }();
  return dir;
}

storage::LogOptions options() {
  storage::LogOptions o;
  o.index_interval_bytes = 256;  // small, so that short inputs get index entries too
  o.retention_ms = -1;
  return o;
}

// Reads every record from the log start on; each read must succeed and move forward.
std::vector<storage::Record> read_all(const storage::PartitionLog& log) {
  std::vector<storage::Record> all;
  int64_t offset = log.start_offset();
  const int64_t end = log.next_offset();
  while (offset < end) {
    auto r = log.read(offset, 1000, 1 << 20);
    FUZZ_CHECK(r.is_ok(), "read at offset " + std::to_string(offset) + ": " + r.status().message());
    FUZZ_CHECK(r->next_offset > offset, "read made no progress at " + std::to_string(offset));
    for (auto& record : r->records) {
      FUZZ_CHECK(record.offset >= offset && record.offset < end, "record offset out of range");
      FUZZ_CHECK(all.empty() || record.offset > all.back().offset, "offsets not increasing");
      all.push_back(std::move(record));
    }
    offset = r->next_offset;
  }
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string segment = fuzz::shape_batches(data, size);
  const fs::path& dir = log_dir();
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  FUZZ_CHECK(!ec, "cannot create the log directory: " + ec.message());
  {
    std::ofstream out(dir / "00000000000000000000.log", std::ios::binary);
    out.write(segment.data(), static_cast<std::streamsize>(segment.size()));
    FUZZ_CHECK(out.good(), "cannot write the segment");
  }

  int64_t high_watermark = 0;
  uint64_t size_bytes = 0;
  bool reads_found_more = false;
  {
    std::vector<std::string> repairs;
    auto opened = storage::PartitionLog::open(dir, options(), &repairs);
    FUZZ_CHECK(opened.is_ok(), "recovery failed: " + opened.status().message());
    auto& log = **opened;
    FUZZ_CHECK(log.size_bytes() <= segment.size(), "recovery kept more bytes than the file had");
    FUZZ_CHECK(log.start_offset() <= log.next_offset(), "start after the high watermark");
    const size_t found_at_start = log.corrupt_ranges().size();
    (void)read_all(log);
    reads_found_more = log.corrupt_ranges().size() > found_at_start;

    Message message;
    message.key = "k";
    message.value = "appended after recovery";
    message.timestamp = 1;
    const int64_t before = log.next_offset();
    auto appended = log.append(std::span<const Message>(&message, 1));
    if (before < INT64_MAX - (1ll << 32)) {
      FUZZ_CHECK(appended.is_ok(), "append after recovery: " + appended.status().message());
      FUZZ_CHECK(appended->base_offset == before, "append did not land at the high watermark");
      auto back = log.read(before, 1, 1 << 20);
      FUZZ_CHECK(back.is_ok() && back->records.size() == 1 && back->records[0].message == message,
                 "the appended message does not read back");
    }
    high_watermark = log.next_offset();
    size_bytes = log.size_bytes();
  }

  std::vector<std::string> repairs;
  auto reopened = storage::PartitionLog::open(dir, options(), &repairs);
  FUZZ_CHECK(reopened.is_ok(), "second recovery failed: " + reopened.status().message());
  // A stretch quarantined before is reported again at every start (so the log says what is
  // skipped); nothing may be cut or newly found. The one exception: a stretch that a read
  // quarantined (a batch with a right CRC whose records do not decode) may hold an entry of
  // the index written when it still counted as good; that index is rebuilt without it.
  for (const std::string& line : repairs) {
    const bool index_rebuilt = line.find(".index behind its log: rebuilt") != std::string::npos;
    FUZZ_CHECK((line.find(": corrupt batch in ") != std::string::npos &&
                line.find("are skipped") != std::string::npos) ||
                   (reads_found_more && index_rebuilt),
               "second recovery repaired again: " + line);
  }
  FUZZ_CHECK((*reopened)->next_offset() == high_watermark, "high watermark changed on reopen");
  FUZZ_CHECK((*reopened)->size_bytes() == size_bytes, "size changed on reopen");
  return 0;
}
