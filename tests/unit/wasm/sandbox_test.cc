#include "wasm/sandbox.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/message_json.h"
#include "module_files.h"
#include "sandbox_fixture.h"
#include "wasm_builder.h"

namespace wasmq::wasm {
namespace {

using testing::read_module;

class SandboxTest : public SandboxFixture {};

TEST_F(SandboxTest, PassesMessagesThrough) {
  auto module = load("passthrough");
  ASSERT_TRUE(module);
  Message m = message(std::string("\x00\x01\xff binary", 10));
  auto result = sandbox_->process(module, m);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  ASSERT_EQ(result->transformed_messages.size(), 1u);
  EXPECT_EQ(result->transformed_messages[0], m);
  EXPECT_TRUE(result->should_continue);
  EXPECT_FALSE(result->error);
}

TEST_F(SandboxTest, ReusesInstancesBetweenCalls) {
  auto module = load("passthrough");
  ASSERT_TRUE(module);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  EXPECT_EQ(sandbox_->stats().instances_created, 1u);
  EXPECT_EQ(sandbox_->stats().instances_reused, 99u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 1u);
}

TEST_F(SandboxTest, CallsInsideAScopeBehaveTheSame) {
  auto module = load("passthrough");
  InstanceSettings tight;
  tight.timeout_ms = 50;
  auto loop = load("infinite_loop", tight);
  Sandbox::Scope entered(*sandbox_);
  for (int i = 0; i < 100; ++i) {
    Message m = message("m" + std::to_string(i));
    auto r = sandbox_->process(module, m);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->transformed_messages.at(0), m);
    if (i % 25 == 0) {
      EXPECT_EQ(fails_with(loop, m).code(), StatusCode::kTimeout);
    }
  }
}

TEST_F(SandboxTest, WarmUpCreatesIdleInstances) {
  auto module = load("passthrough");
  ASSERT_TRUE(sandbox_->warm_up(module, 3).is_ok());
  EXPECT_EQ(sandbox_->idle_instances(*module), 3u);
  EXPECT_EQ(sandbox_->stats().instances_created, 3u);
  ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  EXPECT_EQ(sandbox_->stats().instances_created, 3u);
}

TEST_F(SandboxTest, ProcessBatchReturnsOneResultPerMessageInOrder) {
  auto module = load("passthrough");
  ASSERT_TRUE(module->info().has_process_batch);
  std::vector<Message> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(message("m" + std::to_string(i)));
  auto results = sandbox_->process_batch(module, batch);
  ASSERT_TRUE(results.is_ok()) << results.status().message();
  ASSERT_EQ(results->size(), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    ASSERT_EQ((*results)[i].transformed_messages.size(), 1u);
    EXPECT_EQ((*results)[i].transformed_messages[0], batch[i]);
  }
}

TEST_F(SandboxTest, ProcessBatchNeedsTheExport) {
  auto module = load("passthrough_single");
  EXPECT_FALSE(module->info().has_process_batch);
  std::vector<Message> batch = {message()};
  auto results = sandbox_->process_batch(module, batch);
  ASSERT_FALSE(results.is_ok());
  EXPECT_NE(results.status().message().find("does not export process_batch"), std::string::npos);
}

TEST_F(SandboxTest, SplitsFiltersAndStops) {
  auto module = load("splitter");
  Message m = message();
  m.set_header("copies", "3");
  auto split = sandbox_->process(module, m);
  ASSERT_TRUE(split.is_ok()) << split.status().message();
  ASSERT_EQ(split->transformed_messages.size(), 3u);
  EXPECT_EQ(*split->transformed_messages[2].header("copy_index"), "2");

  auto filtered = sandbox_->process(module, message("filter-me"));
  ASSERT_TRUE(filtered.is_ok());
  EXPECT_TRUE(filtered->transformed_messages.empty());
  EXPECT_FALSE(filtered->error);

  Message stop = message();
  stop.set_header("stop", "1");
  auto stopped = sandbox_->process(module, stop);
  ASSERT_TRUE(stopped.is_ok());
  EXPECT_FALSE(stopped->should_continue);
}

TEST_F(SandboxTest, ModuleErrorResultKeepsTheInstance) {
  auto module = load("splitter");
  Message m = message();
  m.set_header("fail", "1");
  auto result = sandbox_->process(module, m);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  EXPECT_EQ(result->error, "asked to fail");
  ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  EXPECT_EQ(sandbox_->stats().instances_created, 1u);
  EXPECT_EQ(sandbox_->stats().instances_discarded, 0u);
}

TEST_F(SandboxTest, CpuIsLimited) {
  InstanceSettings settings;
  settings.timeout_ms = 200;
  auto module = load("infinite_loop", settings);
  auto start = std::chrono::steady_clock::now();
  Status s = fails_with(module, message());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kTimeout);
  EXPECT_EQ(s.message(), "timed out after 200 ms");
  EXPECT_GE(elapsed, std::chrono::milliseconds(200));
  // The watchdog acts at the deadline; the margin only absorbs a busy machine.
  EXPECT_LT(elapsed, std::chrono::milliseconds(200 + 1500));
  EXPECT_EQ(sandbox_->stats().instances_discarded, 1u);
  // A fresh instance runs the next call, and times out again.
  EXPECT_EQ(fails_with(module, message()).code(), StatusCode::kTimeout);
  EXPECT_EQ(sandbox_->stats().instances_created, 2u);
  expect_sandbox_healthy();
}

// A caller's budget (what is left of a stage's or pipeline's time) replaces the module's limit
// for one call only.
TEST_F(SandboxTest, CallTimeoutOverridesTheModuleLimitForOneCall) {
  InstanceSettings settings;
  settings.timeout_ms = 300;
  auto module = load("infinite_loop", settings);
  auto start = std::chrono::steady_clock::now();
  auto r = sandbox_->process(module, message(), 100);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
  EXPECT_EQ(r.status().message(), "timed out after 100 ms");
  EXPECT_LT(elapsed, std::chrono::milliseconds(100 + 1500));
  // The override does not stick: the next call has the module's own limit again.
  EXPECT_EQ(fails_with(module, message()).message(), "timed out after 300 ms");
  expect_sandbox_healthy();
}

// A terminate meant for a timed-out call must never hit the calls after it.
TEST_F(SandboxTest, LateTerminateCannotKillTheNextCall) {
  InstanceSettings tight;
  tight.timeout_ms = 1;
  auto loop = load("infinite_loop", tight);
  auto good = load("passthrough");
  for (int round = 0; round < 30; ++round) {
    EXPECT_EQ(fails_with(loop, message()).code(), StatusCode::kTimeout);
    for (int i = 0; i < 200; ++i) {
      auto r = sandbox_->process(good, message());
      ASSERT_TRUE(r.is_ok()) << "round " << round << " call " << i << ": " << r.status().message();
    }
  }
}

TEST_F(SandboxTest, MemoryIsLimited) {
  InstanceSettings settings;
  settings.memory_limit_bytes = 4 * 1024 * 1024;
  auto module = load("memory_hog", settings);
  ASSERT_EQ(module->info().memory_max_pages, 64u);
  Status s = fails_with(module, message());
  EXPECT_EQ(s.code(), StatusCode::kModuleFailed);
  // The guest's malloc failed because memory.grow did, so it trapped below the limit.
  uint64_t used = 0, limit = 0;
  ASSERT_EQ(std::sscanf(s.message().c_str(), "trap: unreachable in process_message (memory: %lu of %lu bytes)", &used,
                        &limit), 2) << s.message();
  EXPECT_EQ(limit, 4194304u);
  EXPECT_LE(used, limit);
  EXPECT_GT(used, limit / 2);
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, StackOverflowIsCaught) {
  auto module = load("deep_recursion");
  Status s = fails_with(module, message());
  EXPECT_EQ(s.message(), "stack overflow");
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, TrapIsReported) {
  auto module = load("trap");
  Status s = fails_with(module, message());
  EXPECT_EQ(s.message().rfind("trap: unreachable in process_message (memory: ", 0), 0u) << s.message();
  EXPECT_EQ(sandbox_->stats().instances_discarded, 1u);
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, BadResultPointersAreModuleErrors) {
  auto module = load("bad_result_ptr");
  EXPECT_EQ(fails_with(module, message("result-ptr")).message(), "result pointer out of bounds");
  EXPECT_EQ(fails_with(module, message("data")).message(), "result data out of bounds");
  EXPECT_EQ(fails_with(module, message("null")).message(), "module returned a null result pointer");
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, OutputIsLimited) {
  auto module = load("oversized_output");
  Status s = fails_with(module, message());
  EXPECT_EQ(s.code(), StatusCode::kLimitExceeded);
  EXPECT_NE(s.message().find("exceeds the output limit of 16777216 bytes"), std::string::npos)
      << s.message();

  InstanceSettings small;
  small.max_output_bytes = 1000;
  auto limited = load("oversized_output", small);
  Message m = message();
  m.set_header("size", "500");
  ASSERT_TRUE(sandbox_->process(limited, m).is_ok());
  m.set_header("size", "5000");
  EXPECT_NE(fails_with(limited, m).message().find("exceeds the output limit of 1000 bytes"),
            std::string::npos);
  expect_sandbox_healthy();
}

// A module that returns its result's JSON text where the ABI wants the 8-byte {ptr, len} (the
// seed 001 document's ABI) is told so, on a single call and in a run of messages.
TEST_F(SandboxTest, AResultReturnedAsTextIsExplained) {
  auto module = load("text_result");
  const std::string expected =
      "result of 1718840929 bytes exceeds the output limit of 16777216 bytes; its {ptr, len} "
      "reads as the text \"{\"transf\": process_message must return a pointer to 8 bytes {ptr: u32, len: "
      "u32} of a bincode WasmResult (docs/module-abi.md), not to the result itself";
  EXPECT_EQ(fails_with(module, message()).message(), expected);
  Message m = message();
  std::vector<const Message*> run = {&m, &m};
  auto each = sandbox_->process_each(module, run, 1000, 1000, true);
  ASSERT_FALSE(each.empty());
  ASSERT_FALSE(each[0].is_ok());
  EXPECT_EQ(each[0].status().message(), expected);
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, ProcExitEndsTheCall) {
  auto module = load("proc_exit");
  EXPECT_EQ(fails_with(module, message()).message(), "module called proc_exit(3)");
  EXPECT_EQ(sandbox_->stats().instances_discarded, 1u);
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, RefusesModulesThatBreakTheAbi) {
  EXPECT_NE(load_error("missing_export").message().find("missing export process_message"),
            std::string::npos);
  EXPECT_NE(load_error("wrong_signature").message().find(
                "export process_message has signature (i32) -> i32, expected (i32, i32) -> i32"),
            std::string::npos)
      << load_error("wrong_signature").message();
  EXPECT_NE(load_error("unsupported_import").message().find("unsupported import env.foo"),
            std::string::npos);
  EXPECT_EQ(load_error("unsupported_import").code(), StatusCode::kInvalidModule);
}

TEST_F(SandboxTest, RefusesMalformedBinaries) {
  std::vector<uint8_t> garbage = {'n', 'o', 't', ' ', 'w', 'a', 's', 'm'};
  auto r = sandbox_->load("garbage", garbage, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos);

  auto real = read_module("passthrough");
  std::vector<uint8_t> truncated(real.begin(), real.begin() + real.size() / 2);
  r = sandbox_->load("truncated", truncated, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModule);
  EXPECT_NE(r.status().message().find("malformed module"), std::string::npos)
      << r.status().message();

  // Structure intact, a function body invalid (i32.add on an empty stack): V8's validation
  // refuses it and says where.
  std::vector<uint8_t> invalid = testing::WasmBuilder::abi_module().build();
  ASSERT_EQ(invalid[invalid.size() - 3], 0x41);  // the last body is "i32.const 0; end"
  invalid[invalid.size() - 3] = 0x6A;            // i32.add
  invalid[invalid.size() - 2] = 0x01;            // nop
  r = sandbox_->load("invalid_body", invalid, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModule);
  EXPECT_NE(r.status().message().find("Compiling function"), std::string::npos)
      << r.status().message();
  expect_sandbox_healthy();
}

TEST_F(SandboxTest, RefusesInitialMemoryAboveTheLimit) {
  InstanceSettings settings;
  settings.memory_limit_bytes = 65536;
  auto r = sandbox_->load("passthrough", read_module("passthrough"), settings);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("exceeds the memory limit of 65536 bytes"), std::string::npos)
      << r.status().message();
}

TEST_F(SandboxTest, InitModuleReceivesTheConfig) {
  InstanceSettings settings;
  settings.config_json = R"({"a":1})";
  auto module = load("init_reject", settings);
  auto result = sandbox_->process(module, message());
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  ASSERT_EQ(result->transformed_messages.size(), 1u);
  EXPECT_EQ(*result->transformed_messages[0].header("init_seen_len"), "7");
  // init_module returned 0: counted, and the instance still serves calls.
  EXPECT_EQ(sandbox_->stats().init_rejections, 1u);
  EXPECT_TRUE(sandbox_->process(module, message()).is_ok());
}

TEST_F(SandboxTest, HeaderAdderUsesItsConfig) {
  auto plain = load("header_adder");
  auto result = sandbox_->process(plain, message());
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  EXPECT_EQ(*result->transformed_messages[0].header("processed-by"), "header-adder");

  InstanceSettings settings;
  settings.config_json = R"({"team":"data","source":"replaced"})";
  auto configured = load("header_adder", settings);
  result = sandbox_->process(configured, message());
  ASSERT_TRUE(result.is_ok());
  const Message& out = result->transformed_messages[0];
  EXPECT_EQ(*out.header("team"), "data");
  EXPECT_EQ(*out.header("source"), "replaced");
  EXPECT_EQ(sandbox_->stats().init_rejections, 0u);
}

TEST_F(SandboxTest, BatchLengthMismatchIsAModuleError) {
  auto module = load("batch_mismatch");
  std::vector<Message> batch = {message(), message()};
  auto r = sandbox_->process_batch(module, batch);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "process_batch returned 1 results for 2 messages");
}

TEST_F(SandboxTest, WasiSubsetWorks) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  log::configure(spdlog::level::info, {}, {sink}, log::Format::kText);
  auto module = load("wasi_probe");
  auto result = sandbox_->process(module, message());
  // Back to stderr (configure keeps the sinks it has when given none): `log` goes out of scope.
  log::configure(spdlog::level::info, {}, {std::make_shared<spdlog::sinks::stderr_color_sink_mt>()},
                 log::Format::kText);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  const Message& out = result->transformed_messages.at(0);
  int64_t clock_ms = std::stoll(*out.header("clock_realtime_ms"));
  EXPECT_LT(std::llabs(clock_ms - now_ms()), 60'000);
  EXPECT_EQ(*out.header("clock_monotonic_ok"), "true");
  EXPECT_EQ(out.header("random_hex")->size(), 32u);
  EXPECT_NE(*out.header("random_hex"), std::string(32, '0'));
  EXPECT_EQ(*out.header("environ_count"), "0");
  EXPECT_EQ(*out.header("args_count"), "0");
  EXPECT_NE(log.str().find("[etl.module] wasi_probe stdout:"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("[etl.module] wasi_probe stderr:"), std::string::npos) << log.str();
}

// Module output is logged as whole lines: a C module's stdout reaches the log at each newline
// (wasi-libc line-buffers a character device), a line written in pieces is one log line, and a
// line without a newline is logged when the call ends. A trap names its export and, for a Rust
// panic, the panic's message.
TEST_F(SandboxTest, ModuleOutputIsLoggedAsWholeLinesAndAPanicNamesItsMessage) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  log::configure(spdlog::level::info, {}, {sink}, log::Format::kText);
  auto module = load("module_output");
  std::vector<Status> statuses;
  for (const char* value : {"one", "two", "three", "panic"}) {
    Message m = message();
    m.value = value;
    auto r = sandbox_->process(module, m);
    statuses.push_back(r.is_ok() ? Status::ok() : r.status());
  }
  log::configure(spdlog::level::info, {}, {std::make_shared<spdlog::sinks::stderr_color_sink_mt>()},
                 log::Format::kText);
  const std::string text = log.str();
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  for (const char* value : {"one", "two", "three", "panic"}) {
    EXPECT_EQ(count(std::string("module_output stdout: stdout line for ") + value + "\n"), 1u)
        << value << "\n" << text;
  }
  EXPECT_EQ(count("module_output stderr: stderr in three pieces\n"), 4u) << text;
  EXPECT_EQ(count("module_output stderr: stderr without a newline\n"), 4u) << text;
  EXPECT_EQ(count("module_output stderr: thread '<unnamed>' panicked at 'kaboom: bad input', "
                  "src/lib.rs:12:9\n"),
            1u)
      << text;
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(statuses[i].is_ok()) << statuses[i].message();
  ASSERT_FALSE(statuses[3].is_ok());
  EXPECT_EQ(statuses[3].message().rfind(
                "trap: unreachable in process_message: thread '<unnamed>' panicked at 'kaboom: "
                "bad input', src/lib.rs:12:9 (memory: ",
                0),
            0u)
      << statuses[3].message();
}

// A module compiled in one sandbox runs in another sandbox on another thread.
TEST_F(SandboxTest, CompiledModuleIsSharedAcrossThreads) {
  auto module = load("passthrough");
  Status status;
  std::thread worker([&] {
    auto other = Sandbox::create();
    if (!other.is_ok()) {
      status = other.status();
      return;
    }
    for (int i = 0; i < 10; ++i) {
      auto r = (*other)->process(module, message());
      if (!r.is_ok()) status = r.status();
    }
  });
  worker.join();
  EXPECT_TRUE(status.is_ok()) << status.message();
  EXPECT_TRUE(sandbox_->process(module, message()).is_ok());
}

}  // namespace
}  // namespace wasmq::wasm
