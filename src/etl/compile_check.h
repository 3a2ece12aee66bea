// The bounded compile check of an upload: the module is compiled by V8 in a child process (the
// broker's own executable re-run as `wasmq __compile-check`), which the broker kills when it
// runs longer than a time limit or its resident memory grows past a limit. V8's synchronous
// compilation cannot be interrupted inside a process (TerminateExecution does not reach it), so
// a process is the one boundary that bounds it for sure; killing it frees everything it used.
//
// Threads: check_compiles() may be called from any thread; it blocks its caller until the child
// has finished or was killed (at most about the time limit). run_compile_check_child() is the
// child's whole life (its main).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "common/status.h"

namespace wasmq::etl {

// The bounds of one compile check (etl.module_compile_timeout_ms,
// etl.module_compile_max_memory_bytes).
struct CompileBounds {
  std::chrono::milliseconds timeout{5'000};
  uint64_t max_memory_bytes = 512ull << 20;
  // The executable run as the child; "/proc/self/exe" is the running broker (the same binary
  // even when the file was replaced since). Empty: no child; check_compiles() refuses (and the
  // Orchestrator compiles uploads on its compile thread instead, without these bounds: for
  // tests and programs that embed the ETL engine, not for a broker).
  std::filesystem::path executable;
};

// The configuration keys a refused compile check names as its Status::field.
inline constexpr std::string_view kCompileTimeoutKey = "etl.module_compile_timeout_ms";
inline constexpr std::string_view kCompileMaxMemoryKey = "etl.module_compile_max_memory_bytes";

// The hidden subcommand that runs the child.
inline constexpr const char* kCompileCheckCommand = "__compile-check";

// Compiles `binary` (capped at `memory_limit_bytes` of linear memory, as the pipelines that may
// run it) in a child process within `bounds`. OK when V8 compiled it; kInvalidModule with V8's
// message when it refused it; kLimitExceeded when the child was killed, its field the key of the
// limit (kCompileTimeoutKey: "compiling the module took longer than
// etl.module_compile_timeout_ms (N ms) ..."; kCompileMaxMemoryKey: "... used more than
// etl.module_compile_max_memory_bytes (N bytes) ..."); kInternal when the child could not be run
// or died otherwise.
Status check_compiles(std::span<const uint8_t> binary, uint64_t memory_limit_bytes,
                      const CompileBounds& bounds);

// The child: `argv` = {exe, "__compile-check", <memory_limit_bytes>}; reads the module from
// stdin, compiles it, writes V8's refusal (if any) to stdout. Exit status 0: compiled; 3:
// refused; anything else: the check itself failed.
int run_compile_check_child(int argc, char** argv);

}  // namespace wasmq::etl
