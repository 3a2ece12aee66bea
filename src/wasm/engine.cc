#include "wasm/engine.h"

#include <libplatform/libplatform.h>
#include <v8-initialization.h>
#include <v8-wasm.h>

#include <cstdlib>
#include <mutex>

namespace wasmq::wasm {
namespace {

std::once_flag g_init_once;
Status g_init_status;
std::unique_ptr<v8::Platform> g_platform;
std::atomic<uint64_t> g_next_serial{1};

}  // namespace

Status initialize_engine(const EngineOptions& options) {
  std::call_once(g_init_once, [&] {
    // TurboFan for every function up front: predictable speed from the first message, and the
    // compiled code is shared by every isolate. No lazy compilation, no tier-up later.
    std::string flags = "--no-liftoff --no-wasm-tier-up --no-wasm-lazy-compilation --stack-size=" +
                        std::to_string(options.stack_size_kb);
    // Extra flags for diagnosis only (e.g. "--trace-opt"); never needed in production.
    if (const char* extra = std::getenv("WASMQ_V8_FLAGS")) flags += std::string(" ") + extra;
    v8::V8::SetFlagsFromString(flags.c_str());
    g_platform = v8::platform::NewDefaultPlatform(options.platform_threads);
    v8::V8::InitializePlatform(g_platform.get());
    if (options.trap_handler && !v8::V8::EnableWebAssemblyTrapHandler(true)) {
      g_init_status = Status(StatusCode::kInternal, "V8 refused to enable the WebAssembly trap handler");
    }
    if (!v8::V8::Initialize()) {
      g_init_status = Status(StatusCode::kInternal, "V8 failed to initialize");
    }
  });
  return g_init_status;
}

Module::Module(std::string id, ModuleInfo info, InstanceSettings settings,
               std::unique_ptr<v8::CompiledWasmModule> compiled)
    : id_(std::move(id)),
      info_(std::move(info)),
      settings_(std::move(settings)),
      compiled_(std::move(compiled)),
      serial_(g_next_serial.fetch_add(1)) {}

Module::~Module() = default;

}  // namespace wasmq::wasm
