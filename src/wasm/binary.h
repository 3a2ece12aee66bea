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

// What a module may declare (module-abi.md, "Module bounds"). Tables, globals and segments live
// on the isolate's JavaScript heap, outside the linear memory limit, and V8 compiles every
// function up front: these bounds keep both what one instance costs the heap and what one upload
// costs the compiler small. inspect_module() refuses a module beyond any of them, naming the
// bound and the module's figure.
struct ModuleBounds {
  // Elements of all tables together, counted at their initial size and again at their maximum
  // (limit_memory() rewrites the maxima so that table.grow cannot pass this).
  static constexpr uint64_t kTableElements = 100'000;
  static constexpr uint64_t kTables = 100;
  // Exports of every kind. V8 makes a JavaScript wrapper and an exports-object entry for each,
  // per instance; the ABI needs a handful, wasm-bindgen-style modules have hundreds.
  static constexpr uint64_t kExports = 10'000;
  static constexpr uint64_t kGlobals = 10'000;
  static constexpr uint64_t kElementSegments = 10'000;
  static constexpr uint64_t kElementSegmentEntries = 100'000;  // all segments together
  static constexpr uint64_t kDataSegments = 10'000;
  static constexpr uint64_t kTags = 10'000;
  // What V8 compiles at upload (TurboFan, every function, no lazy compilation).
  static constexpr uint64_t kFunctions = 100'000;              // defined by the module
  static constexpr uint64_t kLocalsPerFunction = 10'000;       // declared locals
  static constexpr uint64_t kLocals = 1'000'000;               // declared locals, all functions
  static constexpr uint64_t kFunctionBodyBytes = 1024 * 1024;  // one function's body
  static constexpr uint64_t kCodeBytes = 32 * 1024 * 1024;     // the code section
};

// Host memory one instance costs besides its linear memory, per thing the module declares,
// counted in the instance's memory (the pool's memory_bytes and max_memory_bytes). Measured on
// V8 10.2 (tests/unit/wasm/instance_cost_test.cc: growth of the JavaScript heap and of the
// resident set over 20 instances, module-abi.md "What an instance costs"), with a margin of
// about 1.5x over the largest measurement.
struct InstanceCost {
  static constexpr uint64_t kFixedBytes = 16 * 1024;  // measured 2.8-3.7 KiB
  // One table element at the table's maximum: measured 16 bytes of heap (28 of RSS) empty, 41
  // filled with references to distinct functions (the entry, the dispatch table's signature,
  // target and reference, and the function's placeholder).
  static constexpr uint64_t kTableElementBytes = 64;
  static constexpr uint64_t kFunctionBytes = 16;           // any function: measured 8
  static constexpr uint64_t kExportedFunctionBytes = 512;  // its JS wrapper: measured 330-357
  static constexpr uint64_t kExportedGlobalBytes = 192;    // its global object: measured 114-119
  static constexpr uint64_t kOtherExportBytes = 512;       // tables, memory, tags: not measured
  static constexpr uint64_t kTagBytes = 48;                // measured 25
};

// A function signature, e.g. "(i32, i32) -> i32".
struct FunctionType {
  std::vector<uint8_t> params;   // value type codes (0x7F i32, 0x7E i64, ...)
  std::vector<uint8_t> results;
  bool operator==(const FunctionType&) const = default;
  std::string to_string() const;
};

enum class ExternKind : uint8_t { kFunction = 0, kTable = 1, kMemory = 2, kGlobal = 3, kTag = 4 };

struct TableInfo {
  uint8_t element_type = 0x70;  // funcref (0x70) or externref (0x6F)
  uint64_t initial = 0;
  std::optional<uint64_t> max;
};

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
  std::vector<TableInfo> tables;  // defined by the module
  bool has_tags = false;          // exception-handling tags (a tag section)
  uint64_t tags = 0;
  uint64_t functions = 0;  // imported and defined
  bool has_process_batch = false;
  bool has_init_module = false;
  bool has_initialize = false;
  bool has_start = false;

  const Export* find_export(std::string_view name) const;
  // Host memory the tables may take at their maximum (a table without a maximum counts as
  // ModuleBounds::kTableElements): InstanceCost::kTableElementBytes per element.
  uint64_t table_bytes() const;
  // Host memory one instance takes besides its linear memory (InstanceCost): the fixed part,
  // table_bytes(), functions, exports by kind and tags.
  uint64_t instance_bytes() const;
};

// Parses the binary's sections and checks it against the ABI: magic and version, well-formed
// sections, the required exports with their signatures, optional exports' signatures, imports
// limited to the WASI subset with their exact signatures, one non-shared 32-bit memory defined
// by the module, and ModuleBounds (each refusal names the bound and the module's figure, e.g.
// "tables: 10000000 elements, more than the bound of 100000"). Every problem found is listed in
// the error, separated by "; ". Function bodies are not validated here (only their size and
// local declarations are read); V8 does that when compiling.
Result<ModuleInfo> inspect_module(std::span<const uint8_t> binary);

// Returns a copy of `binary` whose tables and memory have maxima that keep one instance within
// `limit_bytes`:
//   - the tables' maxima add up to at most ModuleBounds::kTableElements: each table gets at most
//     its initial size plus an equal share of what the initial sizes leave of the bound;
//   - the tables' bytes at their maximum (ModuleInfo::table_bytes()), in whole pages rounded
//     down, are taken out of the memory's share: the memory maximum is at most
//     floor(limit / 64 KiB) - floor(table_bytes / 64 KiB) pages (small tables cost nothing).
// Fails when the module's initial memory is already larger than that, or its tables' initial
// sizes exceed the bound.
Result<std::vector<uint8_t>> limit_memory(std::span<const uint8_t> binary, uint64_t limit_bytes);

// The WASI functions a module may import (module-abi.md) with their signatures.
struct WasiFunction {
  const char* name;
  FunctionType type;
};
const std::vector<WasiFunction>& supported_wasi_functions();
constexpr const char* kWasiModule = "wasi_snapshot_preview1";

}  // namespace wasmq::wasm
