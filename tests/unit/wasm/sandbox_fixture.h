// The fixture of the sandbox's unit tests: one engine per process, a fresh Sandbox per test,
// helpers that load the modules the build compiled and check that a sandbox is still healthy.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/message_json.h"
#include "module_files.h"
#include "wasm/engine.h"
#include "wasm/sandbox.h"

namespace wasmq::wasm {

class SandboxFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(initialize_engine().is_ok()); }

  void SetUp() override {
    auto sandbox = Sandbox::create();
    ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
    sandbox_ = std::move(*sandbox);
  }

  std::shared_ptr<const Module> load(const std::string& name, InstanceSettings settings = {}) {
    auto binary = testing::read_module(name);
    EXPECT_FALSE(binary.empty()) << "module " << name << " was not built";
    auto module = sandbox_->load(name, binary, std::move(settings));
    EXPECT_TRUE(module.is_ok()) << name << ": " << module.status().message();
    return module.is_ok() ? *module : nullptr;
  }

  Status load_error(const std::string& name) {
    auto module = sandbox_->load(name, testing::read_module(name), {});
    return module.is_ok() ? Status::ok() : module.status();
  }

  static Message message(std::string value = "hello") {
    Message m;
    m.key = "k";
    m.value = std::move(value);
    m.headers = {{"source", "test"}};
    m.timestamp = now_ms();
    return m;
  }

  // After any failure, the same sandbox still runs a good module.
  void expect_sandbox_healthy() {
    auto module = load("passthrough");
    ASSERT_TRUE(module);
    Message m = message();
    auto result = sandbox_->process(module, m);
    ASSERT_TRUE(result.is_ok()) << result.status().message();
    ASSERT_EQ(result->transformed_messages.size(), 1u);
    EXPECT_EQ(result->transformed_messages[0], m);
  }

  Status fails_with(const std::shared_ptr<const Module>& module, const Message& m) {
    auto result = sandbox_->process(module, m);
    EXPECT_FALSE(result.is_ok());
    return result.is_ok() ? Status::ok() : result.status();
  }

  std::unique_ptr<Sandbox> sandbox_;
};

}  // namespace wasmq::wasm
