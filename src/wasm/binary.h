// Reading and checking a WebAssembly binary against the module ABI (module-abi.md), before V8
// ever sees it, and rewriting its memory maximum to enforce a memory limit.
//
// Pure functions on bytes: no V8, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace wasmq::wasm {

constexpr uint64_t kWasmPageSize = 64 * 1024;

// A function signature, e.g. "(i32, i32) -> i32".
struct FunctionType {
  std::vector<uint8_t> params;   // value type codes (0x7F i32, 0x7E i64, ...)
  std::vector<uint8_t> results;
  bool operator==(const FunctionType&) const = default;
  std::string to_string() const;
};

enum class ExternKind : uint8_t { kFunction = 0, kTable = 1, kMemory = 2, kGlobal = 3, kTag = 4 };

struct Import {
  std::string module;
  std::string name;
  ExternKind kind;
  std::optional<FunctionType> type;  // functions only
};

struct Export {
  std::string name;
  ExternKind kind;
  std::optional<FunctionType> type;  // functions only
};

// What a module declares, as read from its binary.
struct ModuleInfo {
  std::vector<Import> imports;
  std::vector<Export> exports;
  uint64_t memory_initial_pages = 0;
  std::optional<uint64_t> memory_max_pages;
  bool has_process_batch = false;
  bool has_init_module = false;
  bool has_initialize = false;
  bool has_start = false;

  const Export* find_export(std::string_view name) const;
};

// Parses the binary's sections and checks it against the ABI: magic and version, well-formed
// sections, the required exports with their signatures, optional exports' signatures, imports
// limited to the WASI subset with their exact signatures, one non-shared 32-bit memory defined
// by the module. Every problem found is listed in the error, separated by "; ".
// Function bodies are not validated here; V8 does that when compiling.
Result<ModuleInfo> inspect_module(std::span<const uint8_t> binary);

// Returns a copy of `binary` whose memory maximum is at most floor(limit / 64 KiB) pages.
// Fails when the module's initial memory is already larger than the limit.
Result<std::vector<uint8_t>> limit_memory(std::span<const uint8_t> binary, uint64_t limit_bytes);

// The WASI functions a module may import (module-abi.md) with their signatures.
struct WasiFunction {
  const char* name;
  FunctionType type;
};
const std::vector<WasiFunction>& supported_wasi_functions();
constexpr const char* kWasiModule = "wasi_snapshot_preview1";

}  // namespace wasmq::wasm
