// The audit log (security.audit_log): one JSON object per line for every attempt at an admin
// change (every audited route: the admin API's non-GET routes, topic creation and deletion on
// the data API), admitted or refused, and for every topic a produce request creates:
//
//   {"time":"2026-01-27T10:11:12.345Z","who":"ci","role":"admin","remote":"127.0.0.1",
//    "method":"POST","path":"/api/v1/etl/pipelines","status":201,"result":"ok"}
//   {"time":"…","who":"ingest","role":"producer","remote":"10.0.0.7","method":"POST",
//    "path":"/api/v1/topics/orders/messages","action":"auto_create_topic","topic":"orders",
//    "result":"ok"}
//
// `who` is the token's name, or "anonymous" when the listener has no tokens (then `role` is
// null); `result` is "ok" (2xx), "refused" (401, 403) or "failed" (anything else), and `error`,
// present when the result is not "ok", is the API's error message. The file is opened with
// O_APPEND and each line goes out in one write(2) (no fsync): lines from concurrent requests
// never interleave.
//
// Bounded against clients who are not allowed in (AuditLogOptions):
// - a path longer than max_path_bytes is cut and marked ("…[truncated from N bytes]"), and an
//   error message longer than max_error_bytes likewise;
// - refused attempts (401, 403) are logged at most refused_per_window times per remote address
//   and window; the rest are counted, and once the window has ended a line
//   {"time","remote","result":"suppressed","suppressed":N,"since":…} reports how many were left
//   out. Admitted attempts ("ok", "failed") are never suppressed;
// - when a line would take the file past max_bytes, the file is renamed to "<path>.1" (replacing
//   the previous one) and a new file is started: the log takes at most about 2 × max_bytes.
//
// Threads: record() and record_auto_created_topic() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/mutex.h"
#include "common/status.h"
#include "http/access.h"
#include "http/request.h"

namespace wasmq::http {

struct AuditLogOptions {
  uint64_t max_bytes = 64ull << 20;  // rotate before passing this; 0: never rotate
  size_t max_path_bytes = 256;
  size_t max_error_bytes = 512;
  size_t refused_per_window = 20;  // refused attempts logged per remote address and window
  std::chrono::milliseconds window{10'000};
};

class AuditLog {
 public:
  // Opens (creating it with mode 0600 when missing) `path` for appending. kIo naming the path.
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& path,
                                                AuditLogOptions options = {});
  // Writes the pending counts of suppressed lines, then closes the file.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends the line for one attempt: `principal` may be null (anonymous), `response` is what
  // was sent. A failed write is logged (target "http") and does not change the response.
  void record(const Principal* principal, std::string_view remote, Verb method,
              std::string_view path, const Response& response);
  // As record(), at `now_ms` (ms since the epoch): for tests of the windows.
  void record_at(int64_t now_ms, const Principal* principal, std::string_view remote, Verb method,
                 std::string_view path, const Response& response);

  // Appends the line for one attempt on the Kafka listener (kafka.md, "Security"): a failed
  // authentication, a request refused for want of a right, a topic created or deleted.
  // `result` is "ok", "refused" or "failed"; refusals are bounded per remote address as above.
  //   {"time":"…","who":"ingest","role":"producer","remote":"127.0.0.1:50312",
  //    "protocol":"kafka","api":"DeleteTopics","resource":"topic orders","result":"refused",
  //    "error":"token \"ingest\" has role producer, which lacks the right delete_topics …"}
  void record_kafka(const Principal* principal, std::string_view remote, std::string_view api,
                    std::string_view resource, std::string_view result, std::string_view error);
  // Appends the line for a topic that a produce request to `topic` created (auto_create_topics).
  void record_auto_created_topic(const Principal* principal, std::string_view remote,
                                 std::string_view topic);

  // The line record() writes, without the newline (for tests). `now_ms`: the time, in ms since
  // the epoch.
  static std::string line(int64_t now_ms, const Principal* principal, std::string_view remote,
                          Verb method, std::string_view path, const Response& response,
                          const AuditLogOptions& options = {});

  const std::filesystem::path& path() const { return path_; }

 private:
  // Refused attempts of one remote address in its current window.
  struct Window {
    int64_t start_ms = 0;
    size_t logged = 0;
    uint64_t suppressed = 0;
  };

  AuditLog(std::filesystem::path path, int fd, uint64_t size, AuditLogOptions options)
      : path_(std::move(path)), options_(options), fd_(fd), size_(size) {}
  // Writes the summary line of every window that ended by `now_ms` (all when `all`) and forgets
  // those windows; at most once per tenth of a window unless `force`. Caller holds mutex_.
  void flush_windows_locked(int64_t now_ms, bool all, bool force) REQUIRES(mutex_);
  // Whether an attempt from `remote` is written: always unless `refused` and its window has
  // logged refused_per_window already (then it is counted). Caller holds mutex_.
  bool admit_locked(int64_t now_ms, std::string_view remote, bool refused) REQUIRES(mutex_);
  // Appends `text` (one line, with its newline), rotating first when it would pass max_bytes.
  // Caller holds mutex_.
  void write_locked(const std::string& text) REQUIRES(mutex_);

  const std::filesystem::path path_;
  const AuditLogOptions options_;
  Mutex mutex_;  // one line at a time, so that a short write is finished before the next
  int fd_ GUARDED_BY(mutex_);
  uint64_t size_ GUARDED_BY(mutex_);  // bytes in the current file
  std::map<std::string, Window, std::less<>> windows_ GUARDED_BY(mutex_);  // by remote address
  int64_t next_flush_ms_ GUARDED_BY(mutex_) = 0;
};

}  // namespace wasmq::http
