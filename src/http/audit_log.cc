#include "http/audit_log.h"

#include <fcntl.h>
#include <fmt/format.h>
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

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kIo, fmt::format("security.audit_log: cannot open {}: {}",
                                               path.string(), std::strerror(errno)));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(path, fd));
}

AuditLog::~AuditLog() { ::close(fd_); }

std::string AuditLog::line(int64_t now_ms, const Principal* principal, std::string_view remote,
                           Verb method, std::string_view path, const Response& response) {
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
  o["path"] = path;
  o["status"] = status;
  o["result"] = result;
  if (status / 100 != 2) o["error"] = error_message_of(response);
  return json::serialize(o);
}

void AuditLog::record(const Principal* principal, std::string_view remote, Verb method,
                      std::string_view path, const Response& response) {
  std::string text = line(now_ms(), principal, remote, method, path, response);
  text += '\n';
  std::lock_guard lock(mutex_);
  std::string_view rest = text;
  while (!rest.empty()) {
    ssize_t written = ::write(fd_, rest.data(), rest.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      log::get("http").error("audit log {}: cannot write: {}", path_.string(),
                             std::strerror(errno));
      return;
    }
    rest.remove_prefix(static_cast<size_t>(written));
  }
}

}  // namespace wasmq::http
