// A module author's first hour, as a newcomer lives it: from an empty directory outside the
// checkout, `wasmq module init` (Rust and C), `wasmq module build`, a broker, `module deploy`,
// `pipeline apply -f` the generated pipeline, `produce` the samples and `consume` the result,
// each step timed; the `sh doc-test` blocks of the SDK READMEs, run as written; and what init
// and build refuse (names, languages, directories, broken sources, wasm-bindgen modules).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "broker_process.h"
#include "command.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;
using testing::CommandRun;
using testing::quote;
using testing::shell;
using testing::slurp;

const fs::path kSourceDir = WASMQ_SOURCE_DIR;
const fs::path kBinary = WASMQ_BINARY;
// The longest one command may take: a Rust build (about 20 s on an idle machine) on a busy one.
constexpr int kCommandSeconds = 180;

std::string header(const json::object& message, const char* name) {
  const json::value* headers = message.if_contains("headers");
  const json::value* value = headers ? headers->as_object().if_contains(name) : nullptr;
  return value ? std::string(value->as_string()) : "<absent>";
}

class ModuleAuthorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/wasmq-author-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log_tail() << "\n";
    broker_.reset();
    fs::remove_all(root_);
  }

  void start_broker() {
    broker_ = std::make_unique<BrokerProcess>(root_ / "broker");
    broker_->start();
  }

  // Runs a shell command in `cwd` as a user whose PATH has the built wasmq first and, once a
  // broker runs, WASMQ_ADMIN and WASMQ_BROKER pointing at it; no WASMQ_SDK or CARGO_TARGET_DIR
  // from the test's environment. A command that runs longer than kCommandSeconds is stopped
  // (exit code 124), so that a hang fails the test instead of holding it.
  CommandRun run(const std::string& command, const fs::path& cwd, const std::string& input = "") {
    std::string env =
        "unset WASMQ_SDK CARGO_TARGET_DIR; export PATH=" + quote(kBinary.parent_path().string()) +
        ":\"$PATH\"; ";
    if (broker_) {
      env += "export WASMQ_ADMIN=" + quote(broker_->admin_url()) +
             " WASMQ_BROKER=" + quote(broker_->data_url()) + "; ";
    }
    CommandRun r = shell("cd " + quote(cwd.string()) + " && " + env + "timeout -k 5 " +
                             std::to_string(kCommandSeconds) + " sh -c " + quote(command),
                         input);
    EXPECT_NE(r.exit_code, 124) << "timed out after " << kCommandSeconds << " s: " << command;
    return r;
  }

  // run(), timed as step `step`.
  CommandRun timed(const std::string& step, const std::string& command, const fs::path& cwd,
                   const std::string& input = "") {
    const auto start = std::chrono::steady_clock::now();
    CommandRun r = run(command, cwd, input);
    record(step, start);
    return r;
  }

  void record(const std::string& step, std::chrono::steady_clock::time_point start) {
    steps_.emplace_back(
        step, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  void print_timings(const std::string& language,
                     const std::string& total_label = "from nothing to consumed output") {
    std::ostringstream line;
    double total = 0;
    line.setf(std::ios::fixed);
    line.precision(2);
    line << "[ timing ] " << language << ":";
    for (const auto& [step, seconds] : steps_) {
      line << " " << step << " " << seconds << " s,";
      total += seconds;
    }
    line << " " << total_label << " " << total << " s";
    std::cout << line.str() << std::endl;
    RecordProperty("seconds_" + language, std::to_string(total));
  }

  // init, build, broker, deploy, pipeline, produce, consume: the whole first hour of `language`.
  void from_nothing_to_consumed_output(const std::string& language, const std::string& name,
                                       const std::string& wasm) {
    const fs::path project = root_ / name;
    CommandRun init = timed("init", "wasmq module init " + name + " --lang " + language, root_);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    EXPECT_NE(init.out.find("next: wasmq module build " + name), std::string::npos) << init.out;
    for (const char* file : {"README.md", "sample.ndjson", "pipeline.json"}) {
      EXPECT_TRUE(fs::exists(project / file)) << file;
    }

    CommandRun build = timed("build", "wasmq module build", project);
    ASSERT_EQ(build.exit_code, 0) << build.out << build.err;
    EXPECT_NE(build.out.find("built: " + wasm), std::string::npos) << build.out;
    EXPECT_NE(build.out.find("checked as an upload"), std::string::npos) << build.out;
    EXPECT_NE(build.out.find("1 transformed, 1 filtered, 1 error"), std::string::npos) << build.out;
    ASSERT_EQ(build.lines.size(), 3u) << build.out;
    EXPECT_EQ(build.lines[0].at("status").as_string(), "ok");
    const auto& transformed = build.lines[0].at("messages").as_array().at(0).as_object();
    json::object value = json::parse(transformed.at("value").as_string()).as_object();
    EXPECT_DOUBLE_EQ(value.at("fahrenheit").to_number<double>(), 70.7);
    EXPECT_EQ(header(transformed, "converted-by"), name);
    EXPECT_EQ(build.lines[1].at("status").as_string(), "filtered");
    EXPECT_EQ(build.lines[2].at("status").as_string(), "error");
    EXPECT_NE(std::string(build.lines[2].at("error").as_string()).find("celsius"),
              std::string::npos);

    const auto broker_start = std::chrono::steady_clock::now();
    ASSERT_NO_THROW(start_broker());
    record("broker", broker_start);
    CommandRun deploy = timed(
        "deploy", "wasmq module deploy " + wasm + " --name " + name + " --version 0.1.0", project);
    ASSERT_EQ(deploy.exit_code, 0) << deploy.err;
    CommandRun apply = timed("pipeline", "wasmq pipeline apply -f pipeline.json", project);
    ASSERT_EQ(apply.exit_code, 0) << apply.err;
    const std::string topic = name + "-events";
    CommandRun produce = timed("produce", "wasmq produce " + topic + " < sample.ndjson", project);
    EXPECT_EQ(produce.exit_code, 0) << produce.err;
    EXPECT_NE(produce.err.find("1 stored, 1 filtered, 1 dead-lettered, 0 failed"),
              std::string::npos)
        << produce.err;
    CommandRun consume = timed("consume", "wasmq consume " + topic, project);
    ASSERT_EQ(consume.exit_code, 0) << consume.err;
    ASSERT_EQ(consume.lines.size(), 1u) << consume.out;
    const json::object& stored = consume.lines[0];
    EXPECT_EQ(stored.at("key").as_string(), "sensor-1");
    json::object reading = json::parse(stored.at("value").as_string()).as_object();
    EXPECT_DOUBLE_EQ(reading.at("fahrenheit").to_number<double>(), 70.7);
    EXPECT_DOUBLE_EQ(reading.at("celsius").to_number<double>(), 21.5);
    EXPECT_EQ(header(stored, "converted-by"), name);
    print_timings(language);

    CommandRun dead = run("wasmq consume dlq.etl." + topic, project);
    ASSERT_EQ(dead.exit_code, 0) << dead.err;
    ASSERT_EQ(dead.lines.size(), 1u) << dead.out;
    EXPECT_EQ(dead.lines[0].at("key").as_string(), "sensor-3");
    EXPECT_NE(header(dead.lines[0], "etl.error").find("celsius"), std::string::npos) << dead.out;
  }

  // A C project named `name` in the temp directory, whose source is then replaced by `source`.
  fs::path c_project(const std::string& name, const std::string& source) {
    CommandRun init = run("wasmq module init " + name + " --lang c", root_);
    EXPECT_EQ(init.exit_code, 0) << init.err;
    std::ofstream(root_ / name / (name + ".c")) << source;
    return root_ / name;
  }

  fs::path root_;
  std::unique_ptr<BrokerProcess> broker_;
  std::vector<std::pair<std::string, double>> steps_;
};

TEST_F(ModuleAuthorTest, RustProjectFromNothingToConsumedOutput) {
  from_nothing_to_consumed_output("rust", "celsius", "target/celsius.wasm");
}

TEST_F(ModuleAuthorTest, CProjectFromNothingToConsumedOutput) {
  from_nothing_to_consumed_output("c", "celsius", "build/celsius.wasm");
}

// A block marked `sh doc-test` and the lines of the `text doc-output` block right after it (blank
// lines between at most), which its output must contain, each within a line, in order: the
// conventions of the docs-as-tests runner (docs_test.cc).
struct DocBlock {
  std::string text;
  std::vector<std::string> expected_output;
};

std::vector<DocBlock> doc_test_blocks(const fs::path& readme) {
  std::istringstream in(slurp(readme));
  std::vector<DocBlock> blocks;
  std::string line;
  enum { kProse, kBlock, kAfterBlock, kOutput } state = kProse;
  while (std::getline(in, line)) {
    if (state == kBlock || state == kOutput) {
      if (line == "```") {
        state = state == kBlock ? kAfterBlock : kProse;
      } else if (state == kBlock) {
        blocks.back().text += line + "\n";
      } else {
        blocks.back().expected_output.push_back(line);
      }
    } else if (line == "```sh doc-test") {
      blocks.push_back({});
      state = kBlock;
    } else if (state == kAfterBlock && line == "```text doc-output") {
      state = kOutput;
    } else if (state == kAfterBlock && !line.empty()) {
      state = kProse;
    }
  }
  return blocks;
}

// Where `expected` fails to appear in `output` in order; empty when all do.
std::string missing_output(const std::string& output, const std::vector<std::string>& expected) {
  std::istringstream lines(output);
  std::string line;
  for (const std::string& want : expected) {
    bool found = false;
    while (!found && std::getline(lines, line)) found = line.find(want) != std::string::npos;
    if (!found) return want;
  }
  return "";
}

// What the SDK READMEs tell a newcomer to type works, block by block, from an empty directory,
// as the docs-as-tests runner runs blocks (bash -euo pipefail, stdin /dev/null, stdout and
// stderr together).
TEST_F(ModuleAuthorTest, SdkReadmeDocTestsRunAsWritten) {
  ASSERT_NO_THROW(start_broker());
  for (const char* readme : {"sdk/c/README.md", "sdk/rust/README.md"}) {
    SCOPED_TRACE(readme);
    const std::vector<DocBlock> blocks = doc_test_blocks(kSourceDir / readme);
    ASSERT_GE(blocks.size(), 2u) << "no sh doc-test blocks (init, build; deploy, ...)";
    const std::string sdk = fs::path(readme).parent_path().filename().string();
    const fs::path dir = root_ / sdk;
    fs::create_directories(dir);
    for (const DocBlock& block : blocks) {
      std::ofstream(root_ / (sdk + "-block.sh")) << block.text;
      const auto start = std::chrono::steady_clock::now();
      CommandRun r = run("bash -euo pipefail ../" + sdk + "-block.sh </dev/null 2>&1", dir);
      record(sdk + " block", start);
      ASSERT_EQ(r.exit_code, 0) << "block:\n" << block.text << "output:\n" << r.out;
      EXPECT_EQ(missing_output(r.out, block.expected_output), "") << "block:\n"
                                                                  << block.text << "output:\n"
                                                                  << r.out;
    }
  }
  print_timings("doc-tests", "all blocks");
}

TEST_F(ModuleAuthorTest, InitRefusesBadNamesLanguagesAndNonEmptyDirectories) {
  struct Refusal {
    std::string args, message;
  };
  const fs::path taken = root_ / "taken";
  fs::create_directories(taken);
  std::ofstream(taken / "notes.txt") << "mine";
  for (const Refusal& r : std::vector<Refusal>{
           {"1st --lang c", "module name \"1st\" must start with a letter"},
           {"'my module' --lang c", "may contain only letters, digits"},
           {"col-v1 --lang rust", "may not contain \"-v\" followed by a digit"},
           {"test --lang rust", "module name \"test\" is taken by Rust"},
           {"ok --lang go", "--lang must be rust or c, not \"go\""},
           {"ok --lang c --dir taken", "taken exists and is not empty"},
           {"ok --lang c --dir taken/notes.txt", "exists and is not a directory"},
       }) {
    CommandRun run_result = run("wasmq module init " + r.args, root_);
    EXPECT_EQ(run_result.exit_code, 1) << r.args;
    EXPECT_EQ(run_result.err.rfind("error: ", 0), 0u) << r.args << ": " << run_result.err;
    EXPECT_NE(run_result.err.find(r.message), std::string::npos)
        << r.args << ": " << run_result.err;
  }
  EXPECT_EQ(slurp(taken / "notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(root_ / "ok"));
  EXPECT_NE(run("wasmq module init ok", root_).exit_code, 0) << "--lang is required";

  // An SDK that is not where WASMQ_SDK says: the message names the place and the variable.
  CommandRun no_sdk = run("WASMQ_SDK=/nonexistent wasmq module init ok --lang c", root_);
  EXPECT_EQ(no_sdk.exit_code, 1);
  EXPECT_NE(no_sdk.err.find("WASMQ_SDK is /nonexistent, which does not hold the C SDK"),
            std::string::npos)
      << no_sdk.err;
  EXPECT_FALSE(fs::exists(root_ / "ok"));
}

// The contract with `make install`: PREFIX/bin/wasmq finds PREFIX/share/wasmq/sdk and writes
// that path into the project, which then builds.
TEST_F(ModuleAuthorTest, InitFindsTheSdkOfAnInstallation) {
  const fs::path prefix = root_ / "prefix";
  fs::create_directories(prefix / "bin");
  fs::create_directories(prefix / "share" / "wasmq" / "sdk");
  fs::copy_file(kBinary, prefix / "bin" / "wasmq");
  fs::copy(kSourceDir / "sdk" / "c", prefix / "share" / "wasmq" / "sdk" / "c",
           fs::copy_options::recursive);
  const std::string installed = quote((prefix / "bin" / "wasmq").string());
  CommandRun init = run(installed + " module init probe --lang c", root_);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const fs::path sdk = prefix / "share" / "wasmq" / "sdk";
  EXPECT_NE(init.out.find("(SDK: " + sdk.string() + ")"), std::string::npos) << init.out;
  EXPECT_NE(slurp(root_ / "probe" / "Makefile").find((sdk / "c").string()), std::string::npos);
  CommandRun build = run(installed + " module build probe", root_);
  EXPECT_EQ(build.exit_code, 0) << build.out << build.err;
  EXPECT_NE(build.out.find("built: probe/build/probe.wasm"), std::string::npos) << build.out;
  // No Rust SDK there, and none beside it.
  CommandRun rust = run(installed + " module init rusty --lang rust", root_);
  EXPECT_EQ(rust.exit_code, 1);
  EXPECT_NE(rust.err.find("cannot find the Rust SDK (rust/Cargo.toml): not in " + sdk.string()),
            std::string::npos)
      << rust.err;
}

TEST_F(ModuleAuthorTest, BuildFailsClearlyOnABrokenSource) {
  const fs::path project = c_project("broken", "#include \"wasmq_module.h\"\nthis is not C;\n");
  CommandRun build = run("wasmq module build", project);
  EXPECT_EQ(build.exit_code, 1);
  EXPECT_NE(build.err.find("$ cd "), std::string::npos)
      << "the command run is shown: " << build.err;
  EXPECT_NE(build.err.find("broken.c:2"), std::string::npos)
      << "the compiler's message: " << build.err;
  EXPECT_NE(build.err.find("error: the build failed: make exited with status 2"), std::string::npos)
      << build.err;
  EXPECT_TRUE(build.lines.empty()) << "nothing was run: " << build.out;

  CommandRun nothing = run("wasmq module build", root_);
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.err.find("no Cargo.toml (Rust) or Makefile (C) in"), std::string::npos)
      << nothing.err;
}

// A Rust module that panics: the result names the export that trapped and the panic's message
// (not only "unreachable"), and the panic's lines are logged whole (Rust writes them in pieces).
TEST_F(ModuleAuthorTest, ARustPanicIsReportedWithItsMessage) {
  CommandRun init = run("wasmq module init panicky --lang rust", root_);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const fs::path project = root_ / "panicky";
  const fs::path lib = project / "src" / "lib.rs";
  std::string source = testing::slurp(lib);
  const std::string start = "fn process(mut message: Message) -> Result<Option<Message>, String> {\n";
  const size_t at = source.find(start);
  ASSERT_NE(at, std::string::npos) << source;
  source.insert(at + start.size(),
                "    if message.value == b\"boom\" {\n        panic!(\"kaboom: {}\", \"bad input\");\n    }\n");
  std::ofstream(lib) << source;
  std::ofstream(project / "sample.ndjson", std::ios::app) << "{\"value\": \"boom\"}\n";
  CommandRun build = run("wasmq module build", project);
  ASSERT_EQ(build.exit_code, 0) << build.err;
  ASSERT_FALSE(build.lines.empty()) << build.out;
  const boost::json::object& last = build.lines.back();
  ASSERT_EQ(last.at("status").as_string(), "error") << build.out;
  const std::string error(last.at("error").as_string());
  EXPECT_EQ(error.find("trap: unreachable in process_message: "), 0u) << error;
  EXPECT_NE(error.find("panicked at"), std::string::npos) << error;
  EXPECT_NE(error.find("kaboom: bad input"), std::string::npos) << error;
  EXPECT_NE(error.find("src/lib.rs:"), std::string::npos) << error;
  // One log line holds the panic's first line whole.
  std::istringstream log(build.err);
  bool whole = false;
  for (std::string line; std::getline(log, line);) {
    if (line.find("panicky stderr: ") != std::string::npos &&
        line.find("panicked at") != std::string::npos && line.find("src/lib.rs:") != std::string::npos) {
      whole = true;
    }
  }
  EXPECT_TRUE(whole) << build.err;
}

// A module built the seeds' way (wasm-bindgen imports) is refused by the same check as an
// upload, and the message says how to build it instead; so is any other foreign import.
TEST_F(ModuleAuthorTest, BuildRefusesWasmBindgenModulesAndSaysHowToBuildThem) {
  const fs::path project = c_project("bindgen", R"(#include "wasmq_module.h"
__attribute__((import_module("__wbindgen_placeholder__"), import_name("__wbg_new0_5a1d4f")))
int32_t wbg_new0(int32_t);
static int process(const wasmq_message *in, wasmq_output *out) {
  return wbg_new0(1) && wasmq_output_add(out, in) ? WASMQ_OK : WASMQ_FAILED;
}
WASMQ_MODULE(process);
)");
  CommandRun build = run("wasmq module build", project);
  EXPECT_EQ(build.exit_code, 1);
  EXPECT_NE(build.err.find("build/bindgen.wasm would be refused at upload: unsupported import "
                           "__wbindgen_placeholder__.__wbg_new0_5a1d4f; the module was built "
                           "with wasm-bindgen"),
            std::string::npos)
      << build.err;
  EXPECT_NE(build.err.find("build it for wasm32-wasi (rustup >= 1.84: wasm32-wasip1) without "
                           "wasm-bindgen"),
            std::string::npos)
      << build.err;
  EXPECT_TRUE(build.lines.empty()) << build.out;

  // The broker says the same at upload.
  ASSERT_NO_THROW(start_broker());
  CommandRun deploy =
      run("wasmq module deploy build/bindgen.wasm --name bindgen --version 1.0.0", project);
  EXPECT_EQ(deploy.exit_code, 1);
  EXPECT_NE(deploy.err.find("built with wasm-bindgen"), std::string::npos) << deploy.err;
}

}  // namespace
}  // namespace wasmq
