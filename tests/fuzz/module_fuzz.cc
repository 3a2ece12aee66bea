// Fuzzes the module validator (src/wasm/binary.h): inspect_module, which reads every uploaded
// module before V8 sees it, and limit_memory, which rewrites its memory maximum.
//
// Invariants: no crash on any bytes; for a module inspect_module accepts, limit_memory either
// refuses it for its initial memory or returns a module that inspect_module still accepts, with
// the same imports, exports and initial memory and a maximum within the limit.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.h"
#include "wasm/binary.h"

using namespace wasmq;

namespace {

void check_limit(std::span<const uint8_t> input, const wasm::ModuleInfo& info, uint64_t limit) {
  auto limited = wasm::limit_memory(input, limit);
  if (!limited.is_ok()) {
    // A refusal for the limit is the cap's job (initial memory, with the tables' bytes at their
    // rewritten maxima, above the limit); any other refusal means the two readers disagree.
    const bool over_limit = limited.status().code() == StatusCode::kLimitExceeded &&
                            (info.memory_initial_pages * wasm::kWasmPageSize > limit ||
                             !info.tables.empty());
    FUZZ_CHECK(over_limit,
               "limit_memory refused a module inspect_module accepts: " + limited.status().message());
    return;
  }
  auto again = wasm::inspect_module(*limited);
  FUZZ_CHECK(again.is_ok(), "the limited module no longer inspects: " + again.status().message());
  FUZZ_CHECK(again->memory_initial_pages == info.memory_initial_pages, "initial memory changed");
  FUZZ_CHECK(again->memory_max_pages && *again->memory_max_pages <= limit / wasm::kWasmPageSize,
             "memory maximum above the limit");
  FUZZ_CHECK(again->imports.size() == info.imports.size(), "imports changed");
  FUZZ_CHECK(again->exports.size() == info.exports.size(), "exports changed");
  for (size_t i = 0; i < info.exports.size(); ++i) {
    FUZZ_CHECK(again->exports[i].name == info.exports[i].name &&
                   again->exports[i].type == info.exports[i].type,
               "export " + info.exports[i].name + " changed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto info = wasm::inspect_module(input);
  if (!info.is_ok()) {
    // Whatever the validator refuses, the rewrite must refuse or copy without crashing too.
    (void)wasm::limit_memory(input, 1 << 20);
    return 0;
  }
  check_limit(input, *info, 1 << 20);
  check_limit(input, *info, 4ull << 30);
  check_limit(input, *info, 100'000);  // not a whole number of pages
  return 0;
}
