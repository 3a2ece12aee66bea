// The WASI subset of module-abi.md, as V8 host functions.
//
// The functions reach the calling instance's memory through a GuestMemory the Sandbox sets
// before every guest call; they check every pointer and length against it and answer with a
// WASI errno instead of trusting the guest. Runs on the sandbox's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <v8-context.h>
#include <v8-object.h>

namespace wasmq::wasm {

// WASI errno values used by the host.
enum WasiErrno : int32_t {
  kWasiSuccess = 0,
  kWasiBadFd = 8,
  kWasiFault = 21,
  kWasiInvalid = 28,
};

// Bounds of one fd_write call on stdout/stderr (module-abi.md, "Imports"). The host never holds
// more than one line of module output (kMaxOutputLineBytes) and looks at no more than
// kMaxWriteBytesPerCall bytes of one call; the rest is dropped and counted, but reported as
// written, so that the guest's libc does not loop writing it again.
constexpr uint32_t kMaxWriteIovecs = 1024;  // POSIX IOV_MAX; more: EINVAL
constexpr uint64_t kMaxWriteBytesPerCall = 64 * 1024;
constexpr size_t kMaxOutputLineBytes = 4096;

// What the WASI functions need from the instance that is running.
class WasiHost {
 public:
  virtual ~WasiHost() = default;
  // The current instance's memory as [base, base + size), or base == nullptr when there is none
  // yet (a start function running during instantiation).
  virtual void guest_memory(uint8_t** base, size_t* size) = 0;
  // Text the module wrote to stdout (fd 1) or stderr (fd 2), without a newline; `line_end`
  // when a newline ended it. The host joins the pieces of a line (a line may come in several
  // writes: Rust writes a panic message in a dozen) and logs whole lines; what is left when a
  // call ends is logged as a line then.
  virtual void module_output(int fd, std::string_view text, bool line_end) = 0;
  // Bytes of one fd_write call to `fd` that were not forwarded: beyond kMaxWriteBytesPerCall, or
  // beyond kMaxOutputLineBytes in a line.
  virtual void module_output_dropped(int fd, uint64_t bytes) = 0;
  // The module called proc_exit(code); the host ends the call.
  virtual void module_exit(int32_t code) = 0;
};

// Builds the import object {wasi_snapshot_preview1: {...}} bound to `host`, which must outlive
// every instance created with it.
v8::Local<v8::Object> make_wasi_imports(v8::Isolate* isolate, v8::Local<v8::Context> context,
                                        WasiHost* host);

}  // namespace wasmq::wasm
