#include "common/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wasmq {

namespace fs = std::filesystem;

Result<std::string> read_file(const fs::path& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(StatusCode::kIo, "cannot read " + path.string() + ": " + std::strerror(errno));
  }
  std::string data;
  char buffer[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return Status(StatusCode::kIo, "cannot read " + path.string() + ": " + std::strerror(error));
    }
    if (n == 0) break;
    if (data.size() + static_cast<uint64_t>(n) > max_bytes) {
      ::close(fd);
      return Status(StatusCode::kLimitExceeded,
                    path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    data.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

Status write_file_atomically(const fs::path& path, std::string_view data) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status(StatusCode::kIo, "cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  size_t written = 0;
  bool ok = true;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    written += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int error = errno;
  ::close(fd);
  std::error_code ec;
  if (ok) fs::rename(tmp, path, ec);
  if (!ok || ec) {
    fs::remove(tmp, ec);
    return Status(StatusCode::kIo, "cannot write " + path.string() + ": " +
                                       (ok ? std::string("rename failed") : std::strerror(error)));
  }
  int dir = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(),
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::ok();
}

Status without_path(const Status& status, std::string_view what) {
  const std::string& message = status.message();
  const size_t colon = message.rfind(": ");
  std::string reason = colon == std::string::npos ? "input/output error" : message.substr(colon + 2);
  return Status(status.code(), std::string(what) + ": " + reason);
}

}  // namespace wasmq
