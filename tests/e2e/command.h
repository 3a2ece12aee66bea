// Runs the wasmq binary as a command, the way a user's shell does, for end-to-end tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace wasmq::testing {

struct CommandRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<boost::json::object> lines;  // the lines of stdout that are JSON objects
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `command` (a shell command line) with `input` on stdin.
inline CommandRun shell(const std::string& command, const std::string& input = "") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("wasmq-cmd-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in") << input;
  std::string cmd = "(" + command + ") <" + quote((dir / "in").string()) + " >" +
                    quote((dir / "out").string()) + " 2>" + quote((dir / "err").string());
  CommandRun r;
  int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (!ec && v.is_object()) r.lines.push_back(std::move(v.as_object()));
  }
  fs::remove_all(dir);
  return r;
}

// Runs wasmq with `args` and `input` on stdin.
inline CommandRun wasmq(const std::vector<std::string>& args, const std::string& input) {
  std::string cmd = quote(WASMQ_BINARY);
  for (const auto& a : args) cmd += " " + quote(a);
  return shell(cmd, input);
}

}  // namespace wasmq::testing
