// Process-wide V8 set-up and the objects that outlive any one thread: modules compiled once and
// shared by every Sandbox (one per thread, see sandbox.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "wasm/binary.h"

namespace v8 {
class CompiledWasmModule;
}

namespace wasmq::wasm {

struct EngineOptions {
  // V8's stack limit for guest code, in KiB. Every thread that runs a Sandbox needs a real
  // stack well above this (at least twice), or a deep recursion in a guest crashes the process
  // instead of raising a catchable stack overflow.
  uint32_t stack_size_kb = 900;
  // Guard-page bounds checks (faster code); reserves ~10 GiB of address space per memory.
  bool trap_handler = true;
  // Background threads for V8's platform (garbage collection, compilation jobs).
  int platform_threads = 1;
};

// Initializes V8 for the process. Idempotent and thread-safe; the first call's options win.
// Fails when V8 rejects a flag the engine relies on.
Status initialize_engine(const EngineOptions& options = {});

// Settings every instance of a module gets (module-abi.md, "Limits").
struct InstanceSettings {
  uint64_t memory_limit_bytes = 64ull * 1024 * 1024;
  uint32_t timeout_ms = 5000;
  uint64_t max_output_bytes = 16ull * 1024 * 1024;
  // Passed to init_module as compact UTF-8 JSON; empty means none (length 0).
  std::string config_json;
};

// A module ready to run: validated against the ABI, its memory maximum capped at the memory
// limit, compiled once. Immutable and shared (by shared_ptr) across threads; each Sandbox makes
// its own module object and instances from the compiled code. Created by Sandbox::load().
class Module {
 public:
  Module(std::string id, ModuleInfo info, InstanceSettings settings,
         std::unique_ptr<v8::CompiledWasmModule> compiled);
  ~Module();

  const std::string& id() const { return id_; }
  const ModuleInfo& info() const { return info_; }
  const InstanceSettings& settings() const { return settings_; }
  // Unique within the process; keys per-sandbox caches.
  uint64_t serial() const { return serial_; }
  const v8::CompiledWasmModule& compiled() const { return *compiled_; }

 private:
  std::string id_;
  ModuleInfo info_;
  InstanceSettings settings_;
  std::unique_ptr<v8::CompiledWasmModule> compiled_;
  uint64_t serial_;
};

}  // namespace wasmq::wasm
