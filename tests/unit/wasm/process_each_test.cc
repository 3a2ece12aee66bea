// Sandbox::process_each: single calls of process_message for a run of messages, entering V8
// once per run. Each message gets exactly what process() gives it; a failure fails one message.
#include <chrono>
#include <string>
#include <vector>

#include "sandbox_fixture.h"

namespace wasmq::wasm {
namespace {

class ProcessEachTest : public SandboxFixture {
 protected:
  static std::vector<Message> messages(size_t n, size_t value_bytes = 20) {
    std::vector<Message> out;
    for (size_t i = 0; i < n; ++i) {
      Message m = message("message-" + std::to_string(i) + std::string(value_bytes, 'v'));
      m.headers.push_back({"n", std::to_string(i)});
      out.push_back(std::move(m));
    }
    return out;
  }
  static std::vector<const Message*> pointers(const std::vector<Message>& ms) {
    std::vector<const Message*> out;
    for (const auto& m : ms) out.push_back(&m);
    return out;
  }
  std::shared_ptr<const Module> faulty(const std::string& config) {
    InstanceSettings settings;
    settings.config_json = config;
    settings.timeout_ms = 300;
    return load("etl_faulty", settings);
  }
};

TEST_F(ProcessEachTest, GivesEveryMessageWhatASingleCallGivesIt) {
  for (const char* name : {"passthrough_single", "header_adder_single", "splitter"}) {
    auto module = load(name);
    ASSERT_TRUE(module);
    const auto in = messages(300);
    auto each = sandbox_->process_each(module, pointers(in));
    ASSERT_EQ(each.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      auto single = sandbox_->process(module, in[i]);
      ASSERT_TRUE(single.is_ok()) << name << ": " << single.status().message();
      ASSERT_TRUE(each[i].is_ok()) << name << " message " << i << ": " << each[i].status().message();
      EXPECT_EQ(*each[i], *single) << name << " message " << i;
    }
  }
}

// The results outgrow the output buffer (sized from the inputs) many times over: the run goes
// on and every result is whole.
TEST_F(ProcessEachTest, ResultsLargerThanTheOutputBufferArriveWhole) {
  auto module = load("splitter");  // one output per comma-separated part
  ASSERT_TRUE(module);
  std::vector<Message> in;
  for (int i = 0; i < 20; ++i) {
    std::string value;
    for (int part = 0; part < 2000; ++part) value += (part ? "," : "") + std::to_string(i);
    in.push_back(message(value));
  }
  auto each = sandbox_->process_each(module, pointers(in));
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_TRUE(each[i].is_ok()) << each[i].status().message();
    auto single = sandbox_->process(module, in[i]);
    ASSERT_TRUE(single.is_ok());
    EXPECT_EQ(*each[i], *single);
  }
}

TEST_F(ProcessEachTest, ATrapFailsThatMessageOnlyAndTheRunGoesOn) {
  auto module = faulty(R"({"trap_word":"bad"})");
  ASSERT_TRUE(module);
  auto in = messages(10);
  in[0].value = "bad first";
  in[4].value = "bad middle";
  in[9].value = "bad last";
  auto each = sandbox_->process_each(module, pointers(in));
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 0 || i == 4 || i == 9) {
      ASSERT_FALSE(each[i].is_ok()) << i;
      EXPECT_NE(each[i].status().message().find("trap"), std::string::npos)
          << each[i].status().message();
    } else {
      ASSERT_TRUE(each[i].is_ok()) << i << ": " << each[i].status().message();
      EXPECT_EQ(each[i]->transformed_messages.at(0).value, in[i].value);
    }
  }
  EXPECT_EQ(sandbox_->stats().instances_discarded, 3u);
  // Asked to stop at a failure: the outcomes end with it.
  auto stopped = sandbox_->process_each(module, pointers(in), 0, 0, /*stop_at_failure=*/true);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_FALSE(stopped[0].is_ok());
  std::vector<const Message*> from_one = pointers(in);
  from_one.erase(from_one.begin());
  stopped = sandbox_->process_each(module, from_one, 0, 0, true);
  ASSERT_EQ(stopped.size(), 4u);
  EXPECT_TRUE(stopped[2].is_ok());
  EXPECT_FALSE(stopped[3].is_ok());
  expect_sandbox_healthy();
}

// Each message has the module's own time limit, not the run: a loop on one message ends that
// message's call after its limit; the messages around it run.
TEST_F(ProcessEachTest, EachMessageHasItsOwnTimeLimit) {
  auto module = faulty(R"({"loop_word":"loop","busy_ms":100})");
  ASSERT_TRUE(module);
  auto in = messages(6);  // each takes 100 ms: the run takes longer than one limit (300 ms)
  in[3].value = "loop";
  auto each = sandbox_->process_each(module, pointers(in));
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 3) {
      ASSERT_FALSE(each[i].is_ok());
      EXPECT_EQ(each[i].status().code(), StatusCode::kTimeout);
      EXPECT_EQ(each[i].status().message(), "timed out after 300 ms");
    } else {
      EXPECT_TRUE(each[i].is_ok()) << i << ": " << each[i].status().message();
    }
  }
  // The caller's limit per message replaces the module's.
  each = sandbox_->process_each(module, pointers(in), 200);
  ASSERT_FALSE(each[3].is_ok());
  EXPECT_EQ(each[3].status().message(), "timed out after 200 ms");
  EXPECT_TRUE(each[4].is_ok());
}

// The time the caller gives the whole run bounds it: what did not run by then fails.
TEST_F(ProcessEachTest, TheRunEndsWithItsBudget) {
  auto module = faulty(R"({"busy_ms":100})");
  ASSERT_TRUE(module);
  auto in = messages(10);
  auto each = sandbox_->process_each(module, pointers(in), 0, 250);
  size_t ok = 0, timed_out = 0;
  for (const auto& r : each) {
    if (r.is_ok()) ++ok;
    if (!r.is_ok() && r.status().code() == StatusCode::kTimeout) ++timed_out;
  }
  EXPECT_GE(ok, 1u);
  EXPECT_LE(ok, 3u);
  EXPECT_EQ(ok + timed_out, in.size());
  EXPECT_TRUE(each[0].is_ok());
  EXPECT_FALSE(each[9].is_ok());
  expect_sandbox_healthy();
}

// Bad results are the message's failure, named as for a single call.
TEST_F(ProcessEachTest, BadResultsFailTheirMessage) {
  for (const char* name : {"bad_result_ptr", "oversized_output"}) {
    auto module = load(name);
    ASSERT_TRUE(module);
    auto in = messages(3);
    auto each = sandbox_->process_each(module, pointers(in));
    for (size_t i = 0; i < in.size(); ++i) {
      auto single = sandbox_->process(module, in[i]);
      ASSERT_FALSE(single.is_ok());
      ASSERT_FALSE(each[i].is_ok()) << name;
      EXPECT_EQ(each[i].status().message(), single.status().message()) << name;
    }
  }
  expect_sandbox_healthy();
}

// A single call leaves its buffers to be freed by the next entry on its instance; a run that
// comes next frees them first, and the guest's allocator sees every buffer freed.
TEST_F(ProcessEachTest, RunsAfterSingleCallsOnTheSameInstancesLeakNothing) {
  auto module = load("passthrough_single");
  ASSERT_TRUE(module);
  auto in = messages(200, 2000);
  for (int round = 0; round < 30; ++round) {
    ASSERT_TRUE(sandbox_->process(module, in[0]).is_ok());
    auto each = sandbox_->process_each(module, pointers(in));
    for (const auto& r : each) ASSERT_TRUE(r.is_ok()) << r.status().message();
  }
  // 30 rounds of 200 x 2 KB: a leak would have grown the instance's memory by megabytes.
  EXPECT_LT(sandbox_->stats().last_call_memory_bytes, 4u << 20);
}

}  // namespace
}  // namespace wasmq::wasm
