#include "cli/module_author.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "cli/transform_command.h"
#include "common/file.h"
#include "etl/compile_check.h"
#include "etl/module_registry.h"
#include "wasm/binary.h"

namespace wasmq::cli {
namespace {

namespace fs = std::filesystem;

// What the broker accepts at upload (etl/module_registry.cc, the admin API's body limit) and the
// memory limit uploads are compiled with (etl/orchestrator_modules.cc: the largest a pipeline may
// set).
constexpr uint64_t kMaxUploadBytes = 50ull << 20;
constexpr uint64_t kUploadMemoryLimitBytes = 4ull << 30;
// The version README.md and the printed deploy command use for a first upload.
constexpr const char* kFirstVersion = "0.1.0";
// Debian's Rust toolchain; a rustup one earlier on PATH is kept out (as cmake/modules.cmake does).
constexpr const char* kDebianCargo = "/usr/bin/cargo";
constexpr const char* kDebianRustc = "/usr/bin/rustc";
constexpr const char* kDebianPath = "/usr/bin:/bin";

int fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

// `word` quoted for a POSIX shell when it needs it, for commands printed to be copied.
std::string shell_word(const std::string& word) {
  bool plain = !word.empty();
  for (char c : word) {
    const bool safe = std::isalnum(static_cast<unsigned char>(c)) ||
                      (c != '\0' && std::strchr("/._-+=:,@%", c) != nullptr);
    plain = plain && safe;
  }
  if (plain) return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

fs::path executable_path() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self;
}

// `path` made absolute and normal, symbolic links resolved where they exist.
fs::path normal_path(const fs::path& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) return path.lexically_normal();
  fs::path resolved = fs::weakly_canonical(absolute, ec);
  return ec ? absolute.lexically_normal() : resolved;
}

// A program run to its end. `exit_code` is its exit status (128 + N after signal N); `error`
// says why it could not be started (then exit_code is -1).
struct ProgramRun {
  int exit_code = -1;
  std::string error;
  std::string output;  // its stdout, when captured
};

// Runs `argv` (found on the PATH of `env`, or this process's) in `dir`, with `env` set on top of
// this process's environment. Its stderr is ours; its stdout is captured into the result when
// `capture`, else sent to our stderr (a build's chatter is not this command's output).
ProgramRun run_program(const std::vector<std::string>& argv, const fs::path& dir,
                       const std::vector<std::pair<std::string, std::string>>& env, bool capture) {
  ProgramRun run;
  int out[2] = {-1, -1};
  int report[2];  // the child writes errno here when exec fails; closed on exec
  if (::pipe2(report, O_CLOEXEC) != 0 || (capture && ::pipe(out) != 0)) {
    run.error = std::string("cannot make a pipe: ") + std::strerror(errno);
    return run;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    int err = 0;
    if (::chdir(dir.c_str()) != 0) err = errno;
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    if (capture) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
    } else {
      ::dup2(2, 1);
    }
    if (err == 0) {
      ::execvp(args[0], args.data());
      err = errno;
    }
    [[maybe_unused]] ssize_t n = ::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(report[1]);
  if (capture) ::close(out[1]);
  if (pid < 0) {
    run.error = std::string("cannot start a process: ") + std::strerror(errno);
    ::close(report[0]);
    if (capture) ::close(out[0]);
    return run;
  }
  if (capture) {
    char buffer[4096];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      run.output.append(buffer, static_cast<size_t>(n));
    }
    ::close(out[0]);
  }
  int child_errno = 0;
  const bool exec_failed =
      ::read(report[0], &child_errno, sizeof child_errno) == sizeof child_errno;
  ::close(report[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_failed) {
    run.error = "cannot run " + argv[0] + " in " + dir.string() + ": " + std::strerror(child_errno);
    return run;
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

// "$ cd DIR && A=1 prog arg": the command as a user would type it, on stderr.
void print_command(const fs::path& dir, const std::vector<std::pair<std::string, std::string>>& env,
                   const std::vector<std::string>& argv) {
  std::string line = "$ cd " + shell_word(dir.string()) + " &&";
  for (const auto& [name, value] : env) line += " " + name + "=" + shell_word(value);
  for (const auto& a : argv) line += " " + shell_word(a);
  std::cerr << line << "\n";
}

// The value of `key = "value"` in section `[section]` of a TOML file (no escapes), or of
// `KEY := value` / `KEY = value` in a Makefile (section empty); empty when absent.
std::string setting(const std::string& text, const std::string& section, const std::string& key) {
  std::string current;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    line = line.substr(first);
    if (line[0] == '[') {
      current = line.substr(1, line.find(']') == std::string::npos ? 0 : line.find(']') - 1);
      continue;
    }
    if (current != section || line.compare(0, key.size(), key) != 0) continue;
    std::string rest = line.substr(key.size());
    const size_t eq = rest.find('=');
    if (eq == std::string::npos || rest.find_first_not_of(" \t:") != eq) continue;
    rest = rest.substr(eq + 1);
    const size_t value_begin = rest.find_first_not_of(" \t");
    if (value_begin == std::string::npos) return "";
    rest = rest.substr(value_begin);
    if (rest[0] == '"') {
      const size_t close = rest.find('"', 1);
      return close == std::string::npos ? "" : rest.substr(1, close - 1);
    }
    return rest.substr(0, rest.find_first_of(" \t#\r"));
  }
  return "";
}

// A project's language and module name, from its build file.
struct Project {
  fs::path dir;
  ModuleLanguage language = ModuleLanguage::kRust;
  std::string name;
};

Result<Project> read_project(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return invalid_argument(dir.string() + " is not a directory");
  }
  Project project{dir, ModuleLanguage::kRust, ""};
  std::string build_file;
  if (fs::exists(dir / "Cargo.toml", ec)) {
    build_file = "Cargo.toml";
    auto text = read_file(dir / build_file, 1 << 20);
    if (!text.is_ok()) return text.status();
    project.name = setting(*text, "package", "name");
  } else if (fs::exists(dir / "Makefile", ec)) {
    build_file = "Makefile";
    project.language = ModuleLanguage::kC;
    auto text = read_file(dir / build_file, 1 << 20);
    if (!text.is_ok()) return text.status();
    project.name = setting(*text, "", "MODULE");
  } else {
    return invalid_argument(
        "no Cargo.toml (Rust) or Makefile (C) in " + dir.string() +
        ": not a module project (wasmq module init NAME --lang rust|c makes one)");
  }
  if (project.name.empty()) {
    return invalid_argument((dir / build_file).string() + " names no module (" +
                            (project.language == ModuleLanguage::kRust
                                 ? "[package] name = \"...\""
                                 : "a line MODULE := <name>") +
                            ")");
  }
  if (Status s = etl::validate_module_name(project.name); !s.is_ok()) {
    return invalid_argument((dir / build_file).string() + ": " + s.message());
  }
  return project;
}

// The WASI target Debian's rustc calls it: wasm32-wasi (1.63), wasm32-wasip1 (1.84 and later).
Result<std::string> wasi_target(const fs::path& dir) {
  ProgramRun targets = run_program({kDebianRustc, "--print", "target-list"}, dir,
                                   {{"PATH", kDebianPath}}, /*capture=*/true);
  if (!targets.error.empty()) return Status(StatusCode::kNotFound, targets.error);
  for (const char* name : {"wasm32-wasi", "wasm32-wasip1"}) {
    if (("\n" + targets.output).find("\n" + std::string(name) + "\n") != std::string::npos) {
      return std::string(name);
    }
  }
  return Status(StatusCode::kNotFound,
                std::string(kDebianRustc) + " knows no wasm32-wasi or wasm32-wasip1 target");
}

// Builds the project; returns the path of its .wasm (DIR/target/NAME.wasm for Rust,
// DIR/build/NAME.wasm for C). The toolchain's messages go to stderr.
Result<fs::path> build_project(const Project& p) {
  std::error_code ec;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  fs::path built, output;
  if (p.language == ModuleLanguage::kRust) {
    if (!fs::exists(kDebianCargo, ec) || !fs::exists(kDebianRustc, ec)) {
      return Status(StatusCode::kNotFound,
                    std::string("Debian's Rust toolchain (") + kDebianCargo + ", " + kDebianRustc +
                        ") is missing: apt-get install cargo rustc libstd-rust-dev-wasm32 "
                        "(README.md says how to build with rustup instead)");
    }
    auto target = wasi_target(p.dir);
    if (!target.is_ok()) return target.status();
    argv = {"cargo", "build", "--offline", "--release", "--target", *target, "--lib"};
    env = {{"PATH", kDebianPath}, {"RUSTC", kDebianRustc}};
    const char* target_dir = std::getenv("CARGO_TARGET_DIR");
    fs::path cargo_target = target_dir && *target_dir ? normal_path(target_dir) : p.dir / "target";
    std::string lib = p.name;
    for (char& c : lib) {
      if (c == '-') c = '_';
    }
    built = cargo_target / *target / "release" / (lib + ".wasm");
    output = p.dir / "target" / (p.name + ".wasm");
  } else {
    argv = {"make"};
    built = output = p.dir / "build" / (p.name + ".wasm");
  }
  // A stale module from an earlier build must not pass for this one.
  fs::remove(built, ec);
  print_command(p.dir, env, argv);
  ProgramRun run = run_program(argv, p.dir, env, /*capture=*/false);
  if (!run.error.empty()) return Status(StatusCode::kNotFound, run.error);
  if (run.exit_code != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "the build failed: " + argv[0] + " exited with status " +
                      std::to_string(run.exit_code) + " (its messages are above)");
  }
  if (!fs::exists(built, ec)) {
    return Status(StatusCode::kNotFound,
                  "the build succeeded but made no " + built.string() +
                      (p.language == ModuleLanguage::kC ? " (the Makefile's first target should)"
                                                        : " (is [lib] crate-type \"cdylib\"?)"));
  }
  if (built != output) {
    fs::create_directories(output.parent_path(), ec);
    fs::copy_file(built, output, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return Status(StatusCode::kIo, "cannot copy " + built.string() + " to " + output.string() +
                                         ": " + ec.message());
  }
  return output;
}

// The checks the broker makes of an upload (ModuleRegistry::add: name, size, the ABI and bounds
// of wasm::inspect_module; then the bounded compile check of etl/compile_check.h), without a
// broker. Fills `info` when the binary could be read.
Status check_as_upload(const std::string& name, std::span<const uint8_t> binary,
                       wasm::ModuleInfo* info) {
  if (Status s = etl::validate_name_and_version(name, kFirstVersion); !s.is_ok()) return s;
  if (binary.size() > kMaxUploadBytes) {
    return Status(StatusCode::kLimitExceeded, "a module may be at most 50 MiB");
  }
  auto inspected = wasm::inspect_module(binary);
  if (!inspected.is_ok()) return inspected.status();
  *info = std::move(*inspected);
  etl::CompileBounds bounds;
  bounds.executable = "/proc/self/exe";
  return etl::check_compiles(binary, kUploadMemoryLimitBytes, bounds);
}

struct InitOptions {
  std::string name;
  std::string language;
  std::string dir;
};

int init(const InitOptions& o) {
  if (Status s = validate_project_name(o.name); !s.is_ok()) return fail(s.message());
  ModuleLanguage language;
  if (o.language == "rust") {
    language = ModuleLanguage::kRust;
  } else if (o.language == "c") {
    language = ModuleLanguage::kC;
  } else {
    return fail("--lang must be rust or c, not \"" + o.language + "\"");
  }
  const fs::path dir = o.dir.empty() ? fs::path(o.name) : fs::path(o.dir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return fail(dir.string() + " exists and is not a directory; choose another --dir");
    }
    if (!fs::is_empty(dir, ec) || ec) {
      return fail(dir.string() + " exists and is not empty; wasmq module init writes a new " +
                  "project only into a new or empty directory (choose another --dir)");
    }
  }
  auto sdk = find_sdk(language, std::getenv("WASMQ_SDK"), executable_path());
  if (!sdk.is_ok()) return fail(sdk.status().message());
  const std::vector<ProjectFile> files = project_files(ProjectSpec{o.name, language, *sdk});
  for (const ProjectFile& file : files) {
    const fs::path path = dir / file.path;
    fs::create_directories(path.parent_path().empty() ? dir : path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary);
    out << file.text;
    out.close();
    if (ec || !out) return fail("cannot write " + path.string());
  }
  std::cout << "created " << (language == ModuleLanguage::kRust ? "a Rust" : "a C")
            << " module project in " << dir.string() << " (SDK: " << sdk->string() << "):";
  for (const ProjectFile& file : files) std::cout << " " << file.path;
  std::cout << "\nnext: wasmq module build"
            << (dir == fs::path(".") ? "" : " " + shell_word(dir.string())) << "\n";
  return 0;
}

// `path` as the user is shown it: relative to the working directory when it is below it.
std::string shown_path(const fs::path& path) {
  std::error_code ec;
  const fs::path relative = fs::relative(path, fs::current_path(ec), ec);
  if (ec || relative.empty() || *relative.begin() == "..") return path.string();
  return relative.string();
}

int build(const std::string& dir_argument) {
  auto project = read_project(normal_path(dir_argument.empty() ? "." : dir_argument));
  if (!project.is_ok()) return fail(project.status().message());
  auto wasm_path = build_project(*project);
  if (!wasm_path.is_ok()) return fail(wasm_path.status().message());
  const std::string shown = shown_path(*wasm_path);
  auto binary = read_file(*wasm_path, kMaxUploadBytes + 1);
  if (!binary.is_ok()) return fail(binary.status().message());
  std::cout << "built: " << shown << " (" << binary->size() << " bytes)\n";
  wasm::ModuleInfo info;
  const auto* bytes = reinterpret_cast<const uint8_t*>(binary->data());
  if (Status s = check_as_upload(project->name, {bytes, binary->size()}, &info); !s.is_ok()) {
    return fail(shown + " would be refused at upload: " + s.message());
  }
  std::string exports;
  for (const auto& e : info.exports) exports += (exports.empty() ? "" : ", ") + e.name;
  std::cout << "checked as an upload: exports " << exports << "; " << info.imports.size()
            << " imports, all wasi_snapshot_preview1\n";

  const fs::path sample = project->dir / "sample.ndjson";
  std::error_code ec;
  int rc = 0;
  if (!fs::exists(sample, ec)) {
    std::cout << "no sample.ndjson: nothing to try\n";
  } else {
    std::cout << "sample.ndjson through the module (as wasmq transform run --module " << shown
              << " --input " << shown_path(sample) << "):\n";
    ModuleOptions options;
    options.module_path = wasm_path->string();
    TransformCounts counts;
    rc = run_transform(options, sample.string(), &counts);
    if (rc == 0) {
      std::cout << "sample.ndjson: " << counts.transformed << " transformed, " << counts.filtered
                << " filtered, " << counts.errors << " error" << (counts.errors == 1 ? "" : "s")
                << "\n";
    }
  }
  if (rc == 0) {
    std::cout << "next: wasmq module deploy " << shell_word(shown) << " --name " << project->name
              << " --version " << kFirstVersion
              << "   (then README.md: pipeline, produce, consume)\n";
  }
  return rc;
}

}  // namespace

std::string_view language_name(ModuleLanguage language) {
  return language == ModuleLanguage::kRust ? "rust" : "c";
}

std::string_view sdk_marker(ModuleLanguage language) {
  return language == ModuleLanguage::kRust ? "rust/Cargo.toml" : "c/wasmq_module.h";
}

Result<fs::path> find_sdk(ModuleLanguage language, const char* wasmq_sdk_env,
                          const fs::path& executable) {
  const std::string what = std::string("the ") +
                           (language == ModuleLanguage::kRust ? "Rust" : "C") + " SDK (" +
                           std::string(sdk_marker(language)) + ")";
  auto holds_sdk = [&](const fs::path& root) {
    std::error_code ec;
    return fs::is_regular_file(root / sdk_marker(language), ec);
  };
  if (wasmq_sdk_env && *wasmq_sdk_env) {
    const fs::path root = normal_path(wasmq_sdk_env);
    if (holds_sdk(root)) return root;
    return Status(StatusCode::kNotFound,
                  "WASMQ_SDK is " + root.string() + ", which does not hold " + what +
                      "; set it to the sdk directory of a wasmq installation or checkout (the one "
                      "with c/ and rust/ in it)");
  }
  const fs::path bin = executable.parent_path();
  std::string looked;
  for (const fs::path& candidate : {bin / ".." / "share" / "wasmq" / "sdk", bin / ".." / "sdk"}) {
    const fs::path root = normal_path(candidate);
    if (holds_sdk(root)) return root;
    looked += (looked.empty() ? "" : ", ") + root.string();
  }
  return Status(StatusCode::kNotFound,
                "cannot find " + what + ": not in " + looked +
                    " (beside the wasmq executable); set WASMQ_SDK to the sdk directory of a "
                    "wasmq installation or checkout");
}

Status validate_project_name(std::string_view name) {
  if (Status s = etl::validate_module_name(name); !s.is_ok()) return s;
  const std::string quoted = "module name \"" + std::string(name) + "\"";
  if (name.size() > 64) {
    return invalid_argument(quoted + " is longer than 64 characters");
  }
  if (!std::isalpha(static_cast<unsigned char>(name[0]))) {
    return invalid_argument(quoted +
                            " must start with a letter (it names the Cargo package "
                            "and the source file too)");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return invalid_argument(quoted + " may contain only letters, digits, '_' and '-' (it " +
                              "names the Cargo package and the source file too)");
    }
  }
  std::string crate(name);
  for (char& c : crate) {
    if (c == '-') c = '_';
  }
  for (const char* reserved : {"std", "core", "alloc", "test", "proc_macro", "wasmq_module"}) {
    if (crate == reserved) {
      return invalid_argument(quoted + " is taken by Rust or the SDK (" + reserved +
                              "); choose another");
    }
  }
  return Status::ok();
}

void add_module_author_commands(CLI::App& app, int& exit_code) {
  CLI::App* module = app.get_subcommand("module");
  module->description(
      "WebAssembly modules: write and try them (init, build), and on a broker (admin API)");

  auto i = std::make_shared<InitOptions>();
  CLI::App* init_cmd = module->add_subcommand(
      "init", "write a new module project (source, build file, sample, pipeline, README)");
  init_cmd->add_option("name", i->name, "the module's name (letters, digits, '_', '-')")
      ->required();
  init_cmd->add_option("--lang", i->language, "rust or c")->required();
  init_cmd->add_option("--dir", i->dir, "where to write it (default: ./NAME; new or empty)");
  init_cmd->footer(
      "Example: wasmq module init celsius --lang rust && wasmq module build celsius\n"
      "The SDK is found in $WASMQ_SDK, else beside the executable (../share/wasmq/sdk, ../sdk).");
  init_cmd->callback([i, &exit_code] { exit_code = init(*i); });

  auto dir = std::make_shared<std::string>(".");
  CLI::App* build_cmd = module->add_subcommand(
      "build", "build a module project to a .wasm, check it as an upload, run it on sample.ndjson");
  build_cmd->add_option("dir", *dir, "the project (default: .)");
  build_cmd->footer(
      "Rust: Debian's cargo, offline, for wasm32-wasi -> target/NAME.wasm.\n"
      "C: make (clang-14, wasm32-wasi) -> build/NAME.wasm.\n"
      "Exits 1 when the build or the check fails; a message the module fails on is a result.");
  build_cmd->callback([dir, &exit_code] { exit_code = build(*dir); });
}

}  // namespace wasmq::cli
