// Runs the real `wasmq serve` binary for end-to-end tests: on loopback, on ports the kernel
// picks (listen "127.0.0.1:0"), in a temporary directory, and stops it again.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace wasmq::testing {

inline std::string slurp_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class BrokerProcess {
 public:
  // Prepares `dir` (emptied) with a config whose data goes to dir/data. `extra_toml` is appended
  // to the [storage] section (e.g. "fsync = \"always\"") and may add later sections.
  explicit BrokerProcess(std::filesystem::path dir, const std::string& storage_toml = "",
                         const std::string& extra_toml = "")
      : dir_(std::move(dir)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::ofstream(config_path()) << "[broker]\n"
                                 << "data_dir = \"" << (dir_ / "data").string() << "\"\n"
                                 << "listen = \"127.0.0.1:0\"\n"
                                 << "[admin]\n"
                                 << "listen = \"127.0.0.1:0\"\n"
                                 << "[storage]\n"
                                 << storage_toml << "\n"
                                 << extra_toml << "\n";
  }
  ~BrokerProcess() {
    if (pid_ > 0) kill_now();
  }

  std::filesystem::path config_path() const { return dir_ / "broker.toml"; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }
  std::filesystem::path log_path() const { return dir_ / "broker.log"; }
  const std::string& data_url() const { return data_url_; }
  const std::string& admin_url() const { return admin_url_; }
  // The security.protocol the line names: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
  const std::string& kafka_protocol() const { return kafka_protocol_; }
  // host:port of the Kafka listener; empty when kafka.listen is not set.
  const std::string& kafka_address() const { return kafka_address_; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Starts the broker and waits until it says where it listens. Throws when it does not
  // within `timeout`, with the end of its log.
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      int log = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, 2);
      ::close(out[0]);
      ::close(out[1]);
      ::execl(WASMQ_BINARY, WASMQ_BINARY, "serve", "--config", config_path().c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_fd_ = out[0];
    std::string seen;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (data_url_.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{stdout_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        kill_now();
        throw std::runtime_error("broker did not start; log:\n" + log_tail());
      }
      char buffer[512];
      ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
      if (n <= 0) {
        kill_now();
        throw std::runtime_error("broker exited at start; log:\n" + log_tail());
      }
      seen.append(buffer, static_cast<size_t>(n));
      // The ready lines: "wasmq: admin API on http(s)://HOST:PORT", then "... data API on ...".
      admin_url_ = url_after(seen, "admin API on ");
      data_url_ = url_after(seen, "data API on ");
      // "wasmq: Kafka API on HOST:PORT (PROTOCOL)" comes before the data API's line, when
      // kafka.listen is set.
      if (size_t at = seen.find("Kafka API on "); at != std::string::npos && !data_url_.empty()) {
        at += 13;
        kafka_address_ = seen.substr(at, seen.find_first_of(" \n", at) - at);
        const size_t open = seen.find('(', at), close = seen.find(')', at);
        if (open != std::string::npos && close != std::string::npos && open < seen.find('\n', at)) {
          kafka_protocol_ = seen.substr(open + 1, close - open - 1);
        }
      }
    }
  }

  // Sends `signal` and waits for the exit; returns the exit code (or 128 + signal).
  int stop(int signal = SIGTERM) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    return wait();
  }

  // SIGKILL: a crash.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    wait();
  }

  static std::string url_after(const std::string& text, const std::string& label) {
    size_t at = text.find(label + "http");
    if (at == std::string::npos) return "";
    at += label.size();
    size_t end = text.find_first_of(" \n", at);
    return end == std::string::npos ? "" : text.substr(at, end - at);
  }

  std::string log_tail(size_t bytes = 4000) const {
    std::ifstream in(log_path());
    std::string all((std::istreambuf_iterator<char>(in)), {});
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
  }

 private:
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    data_url_.clear();
    admin_url_.clear();
    kafka_address_.clear();
    kafka_protocol_.clear();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    stdout_fd_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string data_url_;
  std::string admin_url_;
  std::string kafka_address_;
  std::string kafka_protocol_;
};

}  // namespace wasmq::testing
