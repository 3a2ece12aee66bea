// The audit log (security.audit_log): one JSON object per line for every attempt at an admin
// change (every audited route: the admin API's non-GET routes, topic creation and deletion on
// the data API), admitted or refused:
//
//   {"time":"2026-01-27T10:11:12.345Z","who":"ci","role":"admin","remote":"127.0.0.1",
//    "method":"POST","path":"/api/v1/etl/pipelines","status":201,"result":"ok"}
//
// `who` is the token's name, or "anonymous" when the listener has no tokens (then `role` is
// null); `result` is "ok" (2xx), "refused" (401, 403) or "failed" (anything else), and `error`,
// present when the result is not "ok", is the API's error message. The file is opened with
// O_APPEND and each line goes out in one write(2) (no fsync): lines from concurrent requests
// never interleave, and the file can be rotated by renaming it and restarting the broker.
//
// Threads: record() may be called from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/access.h"
#include "http/request.h"

namespace wasmq::http {

class AuditLog {
 public:
  // Opens (creating it with mode 0600 when missing) `path` for appending. kIo naming the path.
  static Result<std::unique_ptr<AuditLog>> open(const std::filesystem::path& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends the line for one attempt: `principal` may be null (anonymous), `response` is what
  // was sent. A failed write is logged (target "http") and does not change the response.
  void record(const Principal* principal, std::string_view remote, Verb method,
              std::string_view path, const Response& response);

  // The line record() writes, without the newline (for tests). `now_ms`: the time, in ms since
  // the epoch.
  static std::string line(int64_t now_ms, const Principal* principal, std::string_view remote,
                          Verb method, std::string_view path, const Response& response);

  const std::filesystem::path& path() const { return path_; }

 private:
  AuditLog(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::filesystem::path path_;
  std::mutex mutex_;  // one line at a time, so that a short write is finished before the next
  const int fd_;      // guarded by mutex_ for writes
};

}  // namespace wasmq::http
