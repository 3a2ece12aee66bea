#include "etl/compile_check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "wasm/engine.h"
#include "wasm/sandbox.h"

extern char** environ;

namespace wasmq::etl {
namespace {

constexpr size_t kMaxModuleBytes = 50ull << 20;  // as ModuleRegistry
constexpr size_t kMaxMessageBytes = 4096;
constexpr int kExitRefused = 3;
// How often the parent looks at the child's memory and clock.
constexpr int kPollMs = 10;

// The child's resident memory in bytes (VmRSS), or 0 when it cannot be read.
uint64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    size_t digits = line.find_first_of("0123456789");
    uint64_t kib = 0;
    if (digits != std::string::npos) {
      std::from_chars(line.data() + digits, line.data() + line.size(), kib);
    }
    return kib * 1024;
  }
  return 0;
}

// Owns a child process: kills and reaps it unless it was reaped already.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace

Status check_compiles(std::span<const uint8_t> binary, uint64_t memory_limit_bytes,
                      const CompileBounds& bounds) {
  if (bounds.executable.empty()) {
    return Status(StatusCode::kInternal, "no executable for the module compile check");
  }
  // The module goes in over a socket (send with MSG_NOSIGNAL: a child that exits early must not
  // raise SIGPIPE in the broker); V8's message comes back over a pipe.
  int in_pair[2], out_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return Status(StatusCode::kInternal,
                  std::string("compile check: socketpair: ") + std::strerror(errno));
  }
  Fd to_child{in_pair[0]}, child_in{in_pair[1]};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Status(StatusCode::kInternal,
                  std::string("compile check: pipe: ") + std::strerror(errno));
  }
  Fd from_child{out_pipe[0]}, child_out{out_pipe[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_in.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, child_out.fd, 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // Nothing else of the broker (sockets, files) reaches the child.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  const std::string executable = bounds.executable.string();
  const std::string limit = std::to_string(memory_limit_bytes);
  char* argv[] = {const_cast<char*>(executable.c_str()), const_cast<char*>(kCompileCheckCommand),
                  const_cast<char*>(limit.c_str()), nullptr};
  Child child;
  int spawned = ::posix_spawn(&child.pid, executable.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    child.pid = -1;
    return Status(StatusCode::kInternal, std::string("compile check: cannot start the checker: ") +
                                             std::strerror(spawned));
  }
  child_in.reset();
  child_out.reset();
  ::fcntl(to_child.fd, F_SETFL, O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + bounds.timeout;
  size_t sent = 0;
  std::string message;
  if (binary.empty()) ::shutdown(to_child.fd, SHUT_WR);
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(child.pid, &status, WNOHANG);
    if (done < 0 && errno != EINTR) {
      // Reaped elsewhere (SIGCHLD ignored): its verdict is lost.
      int error = errno;
      child.pid = -1;
      return Status(StatusCode::kInternal,
                    std::string("compile check: waitpid: ") + std::strerror(error));
    }
    if (done == child.pid) {
      child.pid = -1;
      // The child has exited: what it wrote is all in the pipe.
      char buffer[1024];
      ssize_t n;
      while (message.size() < kMaxMessageBytes &&
             (n = ::read(from_child.fd, buffer, sizeof buffer)) > 0) {
        message.append(buffer, static_cast<size_t>(n));
      }
      if (message.size() > kMaxMessageBytes) message.resize(kMaxMessageBytes);
      while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
        message.pop_back();
      }
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::ok();
      if (WIFEXITED(status) && WEXITSTATUS(status) == kExitRefused) {
        return Status(StatusCode::kInvalidModule,
                      message.empty() ? std::string("compilation failed") : message);
      }
      return Status(
          StatusCode::kInternal,
          "compile check: the checker " +
              (WIFSIGNALED(status) ? "died of signal " + std::to_string(WTERMSIG(status))
                                   : "exited with status " + std::to_string(WEXITSTATUS(status))) +
              (message.empty() ? std::string() : ": " + message));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Status(StatusCode::kLimitExceeded,
                    "compiling the module took longer than etl.module_compile_timeout_ms (" +
                        std::to_string(bounds.timeout.count()) + " ms); it was stopped",
                    std::string(kCompileTimeoutKey));
    }
    if (uint64_t rss = resident_bytes(child.pid); rss > bounds.max_memory_bytes) {
      return Status(StatusCode::kLimitExceeded,
                    "compiling the module used more than etl.module_compile_max_memory_bytes (" +
                        std::to_string(bounds.max_memory_bytes) + " bytes); it was stopped",
                    std::string(kCompileMaxMemoryKey));
    }
    pollfd fds[2] = {{from_child.fd, POLLIN, 0}, {to_child.fd, POLLOUT, 0}};
    nfds_t count = sent < binary.size() ? 2 : 1;
    ::poll(fds, count, kPollMs);
    if ((fds[0].revents & POLLIN) && message.size() < kMaxMessageBytes) {
      char buffer[1024];
      ssize_t n = ::read(from_child.fd, buffer, sizeof buffer);
      if (n > 0) message.append(buffer, static_cast<size_t>(n));
    }
    if (count == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::send(to_child.fd, binary.data() + sent, binary.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      // A child gone before reading everything: its exit status says why (next turn).
      if (n < 0 && errno != EAGAIN && errno != EINTR) sent = binary.size();
      if (sent == binary.size()) ::shutdown(to_child.fd, SHUT_WR);
    }
  }
}

int run_compile_check_child(int argc, char** argv) {
  // The broker may die without killing its checker: go with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc != 3) {
    std::fputs("usage: wasmq __compile-check <memory_limit_bytes> < module.wasm\n", stdout);
    return 2;
  }
  uint64_t memory_limit = 0;
  std::string_view limit_text(argv[2]);
  auto [end, ec] =
      std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), memory_limit);
  if (ec != std::errc() || end != limit_text.data() + limit_text.size()) {
    std::fputs("the memory limit is not a number\n", stdout);
    return 2;
  }
  std::vector<uint8_t> binary;
  uint8_t buffer[1 << 16];
  while (true) {
    ssize_t n = ::read(0, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fputs("cannot read the module\n", stdout);
      return 2;
    }
    binary.insert(binary.end(), buffer, buffer + n);
    if (binary.size() > kMaxModuleBytes) {
      std::fputs("a module may be at most 50 MiB\n", stdout);
      return kExitRefused;
    }
  }
  if (Status s = wasm::initialize_engine(); !s.is_ok()) {
    std::fputs((s.message() + "\n").c_str(), stdout);
    return 2;
  }
  auto sandbox = wasm::Sandbox::create();
  if (!sandbox.is_ok()) {
    std::fputs((sandbox.status().message() + "\n").c_str(), stdout);
    return 2;
  }
  wasm::InstanceSettings settings;
  settings.memory_limit_bytes = memory_limit;
  auto module = (*sandbox)->load("upload", binary, settings);
  // Nothing to tear down with care: the process ends here, without V8's slow teardown.
  if (!module.is_ok()) {
    std::fputs((module.status().message() + "\n").c_str(), stdout);
    std::fflush(stdout);
    std::_Exit(kExitRefused);
  }
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace wasmq::etl
