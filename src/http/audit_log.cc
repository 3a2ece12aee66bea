#include "http/audit_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "common/message_json.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;

// RFC 3339 in UTC with milliseconds: "2026-01-27T10:11:12.345Z".
std::string rfc3339_ms(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms % 1000);
}

// The API's error message in a response body, or the start of the body.
std::string error_message_of(const Response& response) {
  boost::system::error_code ec;
  json::value body = json::parse(response.body(), ec);
  if (!ec && body.is_object()) {
    const json::value* error = body.get_object().if_contains("error");
    if (error && error->is_object()) {
      const json::value* message = error->get_object().if_contains("message");
      if (message && message->is_string()) return std::string(message->get_string());
    }
  }
  return response.body().substr(0, 200);
}

// `text` cut to `limit` bytes and marked, when longer.
std::string bounded(std::string_view text, size_t limit) {
  if (text.size() <= limit) return std::string(text);
  return fmt::format("{}…[truncated from {} bytes]", text.substr(0, limit), text.size());
}

// Remote addresses tracked at once; beyond this, refusals from new addresses share one window.
constexpr size_t kMaxWindows = 10'000;
constexpr std::string_view kOtherRemotes = "*";

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& path,
                                                 AuditLogOptions options) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kIo, fmt::format("security.audit_log: cannot open {}: {}",
                                               path.string(), std::strerror(errno)));
  }
  struct stat info {};
  uint64_t size = ::fstat(fd, &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
  return std::unique_ptr<AuditLog>(new AuditLog(path, fd, size, options));
}

AuditLog::~AuditLog() {
  {
    MutexLock lock(mutex_);
    flush_windows_locked(now_ms(), true, true);
  }
  if (fd_ >= 0) ::close(fd_);
}

std::string AuditLog::line(int64_t now_ms, const Principal* principal, std::string_view remote,
                           Verb method, std::string_view path, const Response& response,
                           const AuditLogOptions& options) {
  const unsigned status = response.result_int();
  const char* result = status / 100 == 2                ? "ok"
                       : status == 401 || status == 403 ? "refused"
                                                        : "failed";
  json::object o;
  o["time"] = rfc3339_ms(now_ms);
  o["who"] = principal ? principal->name : "anonymous";
  o["role"] = principal ? json::value(role_name(principal->role)) : json::value(nullptr);
  o["remote"] = remote;
  auto method_name = boost::beast::http::to_string(method);
  o["method"] = std::string_view(method_name.data(), method_name.size());
  o["path"] = bounded(path, options.max_path_bytes);
  o["status"] = status;
  o["result"] = result;
  if (status / 100 != 2) o["error"] = bounded(error_message_of(response), options.max_error_bytes);
  return json::serialize(o);
}

void AuditLog::record(const Principal* principal, std::string_view remote, Verb method,
                      std::string_view path, const Response& response) {
  record_at(now_ms(), principal, remote, method, path, response);
}

void AuditLog::record_at(int64_t now, const Principal* principal, std::string_view remote,
                         Verb method, std::string_view path, const Response& response) {
  const unsigned status = response.result_int();
  MutexLock lock(mutex_);
  if (!admit_locked(now, remote, status == 401 || status == 403)) return;
  std::string text = line(now, principal, remote, method, path, response, options_);
  text += '\n';
  write_locked(text);
}

bool AuditLog::admit_locked(int64_t now, std::string_view remote, bool refused) {
  flush_windows_locked(now, false, false);
  if (!refused) return true;
  auto it = windows_.find(remote);
  if (it != windows_.end() && now >= it->second.start_ms + options_.window.count()) {
    flush_windows_locked(now, false, true);
    it = windows_.find(remote);
  }
  if (it == windows_.end()) {
    std::string_view key = windows_.size() < kMaxWindows ? remote : kOtherRemotes;
    it = windows_.try_emplace(std::string(key), Window{now, 0, 0}).first;
  }
  Window& w = it->second;
  if (w.logged >= options_.refused_per_window) {
    ++w.suppressed;
    return false;
  }
  ++w.logged;
  return true;
}

void AuditLog::record_kafka(const Principal* principal, std::string_view remote,
                            std::string_view api, std::string_view resource,
                            std::string_view result, std::string_view error) {
  const int64_t now = now_ms();
  json::object o;
  o["time"] = rfc3339_ms(now);
  o["who"] = principal ? principal->name : "anonymous";
  o["role"] = principal ? json::value(role_name(principal->role)) : json::value(nullptr);
  o["remote"] = remote;
  o["protocol"] = "kafka";
  o["api"] = api;
  if (!resource.empty()) o["resource"] = bounded(resource, options_.max_path_bytes);
  o["result"] = result;
  if (result != "ok") o["error"] = bounded(error, options_.max_error_bytes);
  std::string text = json::serialize(o);
  text += '\n';
  MutexLock lock(mutex_);
  if (!admit_locked(now, remote, result == "refused")) return;
  write_locked(text);
}

void AuditLog::record_auto_created_topic(const Principal* principal, std::string_view remote,
                                         std::string_view topic) {
  json::object o;
  o["time"] = rfc3339_ms(now_ms());
  o["who"] = principal ? principal->name : "anonymous";
  o["role"] = principal ? json::value(role_name(principal->role)) : json::value(nullptr);
  o["remote"] = remote;
  o["method"] = "POST";
  o["path"] = bounded(fmt::format("/api/v1/topics/{}/messages", topic), options_.max_path_bytes);
  o["action"] = "auto_create_topic";
  o["topic"] = topic;
  o["result"] = "ok";
  std::string text = json::serialize(o);
  text += '\n';
  MutexLock lock(mutex_);
  write_locked(text);
}

void AuditLog::flush_windows_locked(int64_t now, bool all, bool force) {
  if (!force && now < next_flush_ms_) return;
  const int64_t window_ms = options_.window.count();
  next_flush_ms_ = now + std::max<int64_t>(1, window_ms / 10);
  for (auto it = windows_.begin(); it != windows_.end();) {
    const Window& w = it->second;
    if (!all && now < w.start_ms + window_ms) {
      ++it;
      continue;
    }
    if (w.suppressed > 0) {
      json::object o;
      o["time"] = rfc3339_ms(now);
      o["remote"] = it->first;
      o["result"] = "suppressed";
      o["suppressed"] = w.suppressed;
      o["since"] = rfc3339_ms(w.start_ms);
      o["error"] = fmt::format(
          "{} more refused attempts from this address were not logged (at most {} per {} ms)",
          w.suppressed, options_.refused_per_window, window_ms);
      std::string text = json::serialize(o);
      text += '\n';
      write_locked(text);
    }
    it = windows_.erase(it);
  }
}

void AuditLog::write_locked(const std::string& text) {
  if (fd_ < 0) return;
  if (options_.max_bytes > 0 && size_ > 0 && size_ + text.size() > options_.max_bytes) {
    std::filesystem::path rotated = path_;
    rotated += ".1";
    int fresh = -1;
    if (::rename(path_.c_str(), rotated.c_str()) == 0) {
      fresh = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    }
    if (fresh >= 0) {
      ::close(fd_);
      fd_ = fresh;
      size_ = 0;
    } else {
      log::get("http").error("audit log {}: cannot rotate: {}", path_.string(),
                             std::strerror(errno));
    }
  }
  std::string_view rest = text;
  while (!rest.empty()) {
    ssize_t written = ::write(fd_, rest.data(), rest.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      log::get("http").error("audit log {}: cannot write: {}", path_.string(),
                             std::strerror(errno));
      return;
    }
    size_ += static_cast<uint64_t>(written);
    rest.remove_prefix(static_cast<size_t>(written));
  }
}

}  // namespace wasmq::http
