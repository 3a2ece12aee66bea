// `make install` as an operator uses it: `cmake --install` of the build directory into a prefix,
// the prefix moved elsewhere, and the moved binary run with nothing of the checkout in reach
// (RUNPATH $ORIGIN/../lib/wasmq, LD_LIBRARY_PATH unset): --version, `serve` with and without a
// configuration, a message produced and consumed, SIGHUP, SIGTERM. The SDKs, the example
// configuration and the systemd unit are where `wasmq module init` and docs/operations.md say.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "http/client.h"
#include "temp_dir.h"

extern char** environ;

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::quote;
using testing::shell;

// The environment of this test without what could lead the installed binary back to the checkout
// or change its configuration: LD_LIBRARY_PATH and every WASMQ_* variable.
std::vector<std::string> clean_environment() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("LD_LIBRARY_PATH=", 0) == 0 || entry.rfind("WASMQ_", 0) == 0) continue;
    out.push_back(entry);
  }
  return out;
}

// `command` (a shell command line) prefixed to run with clean_environment().
std::string clean(const std::string& command) {
  std::string prefix = "env -u LD_LIBRARY_PATH";
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("WASMQ_", 0) == 0) prefix += " -u " + quote(entry.substr(0, entry.find('=')));
  }
  return prefix + " " + command;
}

// `wasmq serve` of an installed tree, started in `dir` with clean_environment(); its stdout and
// stderr both go to dir/broker.log, where the ready lines are looked for.
class InstalledBroker {
 public:
  InstalledBroker(fs::path binary, fs::path dir)
      : binary_(std::move(binary)), dir_(std::move(dir)) {
    fs::create_directories(dir_);
    std::ofstream(config_path()) << "[broker]\n"
                                 << "data_dir = \"" << (dir_ / "data").string() << "\"\n"
                                 << "listen = \"127.0.0.1:0\"\n"
                                 << "[admin]\n"
                                 << "listen = \"127.0.0.1:0\"\n"
                                 << "[etl]\n"
                                 << "workers = 1\n";
  }
  ~InstalledBroker() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }

  fs::path config_path() const { return dir_ / "broker.toml"; }
  std::string log() const { return testing::slurp(dir_ / "broker.log"); }
  const std::string& data_url() const { return data_url_; }
  pid_t pid() const { return pid_; }

  // Starts it and waits for the data API's ready line; false (with the log) when it exits or does
  // not say where it listens within 30 s.
  ::testing::AssertionResult start() {
    std::vector<std::string> environment = clean_environment();
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string binary = binary_.string(), config = config_path().string();
    const std::string log_file = (dir_ / "broker.log").string(), cwd = dir_.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log < 0 || ::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::dup2(log, 1);
      ::dup2(log, 2);
      const char* argv[] = {binary.c_str(), "serve", "--config", config.c_str(), nullptr};
      ::execve(binary.c_str(), const_cast<char**>(argv), envp.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    static const std::regex ready(R"(data API on (http://[0-9.]+:[0-9]+))");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, ready)) {
        data_url_ = m[1];
        return ::testing::AssertionSuccess();
      }
      if (exited()) {
        return ::testing::AssertionFailure() << "exited with " << exit_code_ << "; log:\n" << text;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return ::testing::AssertionFailure() << "no ready line within 30 s; log:\n" << log();
  }

  // True once the process has exited (its exit code is then exit_code()).
  bool exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    record(status);
    return true;
  }
  // Sends `signal` and waits for the exit code (128 + signal when killed by one).
  int stop(int signal) {
    if (pid_ > 0) {
      ::kill(pid_, signal);
      wait();
    }
    return exit_code_;
  }

 private:
  void wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    record(status);
  }
  void record(int status) {
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  fs::path binary_;
  fs::path dir_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string data_url_;
};

class InstallTest : public ::testing::Test {
 protected:
  // Installs the build directory of WASMQ_BINARY into dir()/a and moves it to dir()/b.
  void SetUp() override {
    fs::remove_all(dir());
    fs::create_directories(dir());
    auto run = shell("cmake --install " + quote(build_dir().string()) + " --prefix " +
                     quote(installed_at().string()));
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    fs::rename(installed_at(), prefix());
  }
  void TearDown() override { fs::remove_all(dir()); }

  static fs::path build_dir() { return fs::path(WASMQ_BINARY).parent_path(); }
  fs::path dir() const { return testing::test_temp_dir("wasmq-install"); }
  fs::path installed_at() const { return dir() / "a"; }  // the prefix at install time
  fs::path prefix() const { return dir() / "b"; }        // where the tree is moved to
  fs::path binary() const { return prefix() / "bin" / "wasmq"; }
};

// The files of the contract: the binary, V8 beside it, both SDKs (every header of sdk/c, the
// Rust crate without build output) under share/wasmq/sdk, the example configuration (valid, data
// in /var/lib/wasmq) and the systemd unit naming the install prefix.
TEST_F(InstallTest, InstallsTheBinaryV8TheSdksAnExampleConfigurationAndTheUnit) {
  EXPECT_TRUE(fs::is_regular_file(binary()));
  EXPECT_TRUE(fs::is_regular_file(prefix() / "lib/wasmq/libnode.so.108"));
  const fs::path sdk = prefix() / "share/wasmq/sdk";
  const fs::path source_sdk = fs::path(WASMQ_SOURCE_DIR) / "sdk";
  int headers = 0;
  for (const auto& entry : fs::directory_iterator(source_sdk / "c")) {
    if (entry.path().extension() != ".h") continue;
    ++headers;
    const fs::path installed = sdk / "c" / entry.path().filename();
    ASSERT_TRUE(fs::is_regular_file(installed)) << installed;
    EXPECT_EQ(testing::slurp(installed), testing::slurp(entry.path())) << installed;
  }
  EXPECT_GT(headers, 0);
  EXPECT_TRUE(fs::is_regular_file(sdk / "c/wasmq_module.h"));
  for (const char* file : {"c/README.md", "rust/Cargo.toml", "rust/README.md", "rust/src/lib.rs",
                           "rust/.cargo/config.toml"}) {
    EXPECT_TRUE(fs::is_regular_file(sdk / file)) << sdk / file;
  }
  EXPECT_FALSE(fs::exists(sdk / "rust/target"));
  EXPECT_FALSE(fs::exists(sdk / "rust/Cargo.lock"));

  const fs::path config = prefix() / "share/wasmq/broker.toml";
  const std::string config_text = testing::slurp(config);
  EXPECT_NE(config_text.find("\ndata_dir = \"/var/lib/wasmq\""), std::string::npos) << config_text;
  EXPECT_EQ(config_text.find("./data\""), std::string::npos) << config_text;
  auto check = shell(clean(quote(binary().string()) + " config check " + quote(config.string())));
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  const std::string unit = testing::slurp(prefix() / "lib/systemd/system/wasmq.service");
  ASSERT_FALSE(unit.empty());
  EXPECT_NE(unit.find("\nExecStart=" + (installed_at() / "bin/wasmq").string() +
                      " serve --config /etc/wasmq/broker.toml\n"),
            std::string::npos)
      << unit;
  EXPECT_NE(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n"), std::string::npos) << unit;
  EXPECT_NE(unit.find("\nStateDirectory=wasmq\n"), std::string::npos) << unit;
  EXPECT_NE(unit.find("\nRestart=on-failure\n"), std::string::npos) << unit;
  // V8 writes machine code and then executes it.
  EXPECT_EQ(unit.find("MemoryDenyWriteExecute=yes"), std::string::npos) << unit;
  EXPECT_EQ(unit.find('@'), std::string::npos) << "a placeholder left unfilled:\n" << unit;

  // systemd's own check, where systemd is installed: it reports (and still exits 0 for) keys it
  // does not know or cannot parse, and an ExecStart that is not executable, so the moved tree's
  // path goes in and any output is a failure.
  if (shell("command -v systemd-analyze").exit_code != 0) {
    std::cerr << "systemd-analyze is not installed: the unit is not verified by systemd\n";
    return;
  }
  std::string moved_unit = unit;
  const std::string from = installed_at().string() + "/", to = prefix().string() + "/";
  for (size_t at; (at = moved_unit.find(from)) != std::string::npos;) {
    moved_unit.replace(at, from.size(), to);
  }
  const fs::path unit_copy = dir() / "wasmq.service";
  std::ofstream(unit_copy) << moved_unit;
  auto verify = shell("systemd-analyze verify " + quote(unit_copy.string()));
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(verify.out + verify.err, "") << moved_unit;
}

// The moved tree finds V8 beside it, through $ORIGIN and nothing of the build tree or checkout,
// and runs with LD_LIBRARY_PATH unset. `serve` without --config, away from a checkout, says which
// file it looked for and how to name another.
TEST_F(InstallTest, MovedInstallRunsWithoutTheCheckout) {
  auto dynamic = shell("readelf -d " + quote(binary().string()));
  ASSERT_EQ(dynamic.exit_code, 0) << dynamic.err;
  EXPECT_NE(dynamic.out.find("(RUNPATH)"), std::string::npos) << dynamic.out;
  EXPECT_NE(dynamic.out.find("[$ORIGIN/../lib/wasmq]"), std::string::npos) << dynamic.out;
  EXPECT_EQ(dynamic.out.find(WASMQ_SOURCE_DIR), std::string::npos) << dynamic.out;
  EXPECT_EQ(dynamic.out.find(build_dir().string()), std::string::npos) << dynamic.out;
  EXPECT_EQ(dynamic.out.find(".deps"), std::string::npos) << dynamic.out;

  auto libraries = shell(clean("ldd " + quote(binary().string())));
  ASSERT_EQ(libraries.exit_code, 0) << libraries.out << libraries.err;
  EXPECT_EQ(libraries.out.find("not found"), std::string::npos) << libraries.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(libraries.out, m, std::regex(R"(libnode\.so\.108 => (/\S+))")))
      << libraries.out;
  EXPECT_EQ(fs::canonical(m[1].str()), fs::canonical(prefix() / "lib/wasmq/libnode.so.108"))
      << libraries.out;

  auto version = shell(clean(quote(binary().string()) + " --version"));
  EXPECT_EQ(version.exit_code, 0) << version.out << version.err;
  auto built_version = shell(quote(WASMQ_BINARY) + " --version");
  EXPECT_FALSE(version.out.empty());
  EXPECT_EQ(version.out, built_version.out);

  const fs::path elsewhere = dir() / "elsewhere";
  fs::create_directories(elsewhere);
  auto serve = shell("cd " + quote(elsewhere.string()) + " && " +
                     clean(quote(binary().string()) + " serve"));
  EXPECT_EQ(serve.exit_code, 1) << serve.out << serve.err;
  EXPECT_NE(serve.err.find("config/broker.toml: cannot open"), std::string::npos) << serve.err;
  EXPECT_NE(serve.err.find("looked for " + (elsewhere / "config/broker.toml").string()),
            std::string::npos)
      << serve.err;
  EXPECT_NE(serve.err.find("--config"), std::string::npos) << serve.err;
}

// The moved binary serves: a message produced is consumed; SIGHUP reloads the configuration and
// it keeps serving; SIGTERM stops it with exit code 0.
TEST_F(InstallTest, MovedInstallServesReloadsOnSighupAndStopsOnSigterm) {
  InstalledBroker broker(binary(), dir() / "run");
  ASSERT_TRUE(broker.start());
  http::HttpClient data(broker.data_url());
  auto produce = [&](const std::string& value) {
    auto reply = data.request("POST", "/api/v1/topics/installed/messages",
                              json::serialize(json::object{{"value", value}}));
    ASSERT_TRUE(reply.is_ok()) << reply.status().message();
    EXPECT_EQ(reply->status, 200) << reply->body;
  };
  auto consume = [&]() -> std::vector<std::string> {
    auto reply = data.request("GET", "/api/v1/topics/installed/messages?offset=0&max_messages=10");
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    if (!reply.is_ok()) return {};
    EXPECT_EQ(reply->status, 200) << reply->body;
    std::vector<std::string> values;
    boost::system::error_code ec;
    json::value body = json::parse(reply->body, ec);
    EXPECT_FALSE(ec) << reply->body;
    if (ec) return {};
    for (const auto& m : body.at("messages").as_array()) {
      values.emplace_back(m.at("value").as_string());
    }
    return values;
  };
  produce("before the reload");
  EXPECT_EQ(consume(), std::vector<std::string>{"before the reload"});

  ASSERT_EQ(::kill(broker.pid(), SIGHUP), 0);
  bool reloaded = false;
  for (int i = 0; i < 250 && !reloaded && !broker.exited(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reloaded = broker.log().find("configuration reloaded from") != std::string::npos;
  }
  ASSERT_FALSE(broker.exited()) << "SIGHUP ended the broker; log:\n" << broker.log();
  EXPECT_TRUE(reloaded) << broker.log();
  produce("after the reload");
  EXPECT_EQ(consume(), (std::vector<std::string>{"before the reload", "after the reload"}));

  EXPECT_EQ(broker.stop(SIGTERM), 0) << broker.log();
  EXPECT_NE(broker.log().find("stopped"), std::string::npos) << broker.log();
}

}  // namespace
}  // namespace wasmq
