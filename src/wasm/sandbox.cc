#include "wasm/sandbox.h"

#include <v8-array-buffer.h>
#include <v8-context.h>
#include <v8-exception.h>
#include <v8-function.h>
#include <v8-isolate.h>
#include <v8-local-handle.h>
#include <v8-persistent-handle.h>
#include <v8-primitive.h>
#include <v8-script.h>
#include <v8-typed-array.h>
#include <v8-wasm.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <optional>

#include "common/bincode.h"
#include "common/log.h"
#include "wasm/wasi.h"
#include "wasm/watchdog.h"

namespace wasmq::wasm {
namespace {

// Lines a sandbox forwards from module stdout/stderr per second; the rest are counted.
constexpr int kLogLinesPerSecond = 100;

std::string to_utf8(v8::Isolate* isolate, v8::Local<v8::Value> value) {
  v8::String::Utf8Value s(isolate, value);
  return *s ? std::string(*s, s.length()) : std::string("<unprintable>");
}

// Calls from C++ into V8 carry a fixed cost (scopes, context switches, bookkeeping, ~80 ns)
// that calls from optimized JavaScript into wasm do not (~7 ns). The ABI's five guest calls
// per message (alloc, process, dealloc x3) therefore go through two C++ -> V8 calls: this glue,
// then process_message (or process_batch) itself.
//   prepare(len): frees the buffers of the instance's previous call, if the host left any in
//   regs (regs[5] = 1: dealloc(regs[0], regs[1]); dealloc(regs[2], 8); dealloc(regs[3],
//   regs[4])), then returns alloc(len).
// The previous call's buffers are thus freed at the start of the next call on the same
// instance rather than at the end of their own: the guest sees the same calls, in the same
// order, only later; the results were copied out long before.
constexpr char kGlueSource[] = R"JS(
(function (alloc, dealloc, regs) {
  'use strict';
  return function prepare(len) {
    if (regs[5] === 1) {
      regs[5] = 0;
      dealloc(regs[0], regs[1]);
      dealloc(regs[2], 8);
      dealloc(regs[3], regs[4]);
    }
    return alloc(len);
  };
})
)JS";

// Single calls without a C++ -> V8 entry per message: process_each() encodes a run of messages
// into a host buffer and enters V8 once; this loop then makes, per message, exactly the ABI's
// guest calls in the ABI's order (alloc, process_message, dealloc of the result, of the
// WasmResult and of the input), copying the input in and the result bytes out. JavaScript to
// wasm calls cost a few ns, so a light module's message costs what the guest does plus two
// copies. `regs` (host-shared Int32Array):
//   in:  [0] messages, [1] first message to run, [2] max_output_bytes, [3] input offset of [1],
//        [4] output offset
//   out: [1] the message running, or n when all ran (the watchdog's progress counter: each
//        message has its own time limit), [3]/[4] offsets reached, [5] what stopped it: 0 all
//        ran; 1 alloc out of bounds (regs[6] the pointer); 2 null WasmResult pointer; 3
//        WasmResult out of bounds; 4 result over max_output_bytes (regs[6] its length); 5 result
//        out of bounds; 6 output buffer full: the result of message [1] is left in guest memory
//        (regs[6] input pointer, regs[7] input length, regs[8] WasmResult pointer) for the host,
//        which copies it and leaves its buffers to be freed first thing by the next entry.
// `pending` is the instance's regs of the other glue (kGlueSource): buffers of the last single
// call on the instance, freed first.
constexpr char kEachGlueSource[] = R"JS(
(function (alloc, dealloc, processMessage, memoryObject, regs, pending) {
  'use strict';
  let buf = null, u8 = null, dv = null;
  function views() {
    const b = memoryObject.buffer;
    if (b !== buf) { buf = b; u8 = new Uint8Array(b); dv = new DataView(b); }
  }
  return function each(input, lens, output, outs) {
    if (pending[5] === 1) {
      pending[5] = 0;
      dealloc(pending[0], pending[1]);
      dealloc(pending[2], 8);
      dealloc(pending[3], pending[4]);
    }
    const n = regs[0];
    const maxOut = regs[2];
    const outCap = output.length;
    let i = regs[1];
    let inOff = regs[3];
    let outOff = regs[4];
    for (; i < n; i++) {
      regs[1] = i;
      regs[3] = inOff;
      regs[4] = outOff;
      const len = lens[i];
      const ptr = alloc(len);
      views();
      const p = ptr >>> 0;
      if ((p === 0 && len > 0) || p + len > buf.byteLength) { regs[5] = 1; regs[6] = ptr; return; }
      u8.set(input.subarray(inOff, inOff + len), p);
      const res = processMessage(ptr, len) >>> 0;
      views();
      if (res === 0) { regs[5] = 2; return; }
      if (res + 8 > buf.byteLength) { regs[5] = 3; return; }
      const rptr = dv.getUint32(res, true);
      const rlen = dv.getUint32(res + 4, true);
      if (rlen > maxOut) { regs[5] = 4; regs[6] = rlen; return; }
      if (rptr + rlen > buf.byteLength) { regs[5] = 5; return; }
      if (outOff + rlen > outCap) {
        regs[5] = 6; regs[6] = ptr; regs[7] = len; regs[8] = res;
        return;
      }
      output.set(u8.subarray(rptr, rptr + rlen), outOff);
      outs[i] = rlen;
      outOff += rlen;
      inOff += len;
      dealloc(rptr, rlen);
      dealloc(res, 8);
      dealloc(ptr, len);
    }
    regs[1] = n;
    regs[3] = inOff;
    regs[4] = outOff;
    regs[5] = 0;
  };
})
)JS";

// Host buffers process_each() shares with the each-glue, grown as needed, kept by the sandbox.
struct Staging {
  std::shared_ptr<v8::BackingStore> store;
  size_t capacity = 0;
  uint8_t* data() const { return static_cast<uint8_t*>(store->Data()); }
};

// One instantiated module and the exports the ABI calls; kept by the pool between calls.
struct Instance : PooledInstance {
  v8::Global<v8::Object> object;
  v8::Global<v8::WasmMemoryObject> memory;
  v8::Global<v8::Function> alloc;
  v8::Global<v8::Function> dealloc;
  v8::Global<v8::Function> process_message;
  v8::Global<v8::Function> process_batch;
  v8::Global<v8::Function> prepare;  // glue, see kGlueSource
  v8::Global<v8::Function> each;     // glue, see kEachGlueSource; made at its first use
  v8::Global<v8::Int32Array> regs;   // the glue's view of `pending`
  std::shared_ptr<v8::BackingStore> regs_store;
  // Host memory it takes besides its linear memory (ModuleInfo::instance_bytes(): tables,
  // functions, exports, tags), counted in memory_bytes.
  uint64_t fixed_bytes = 0;
  // Guest buffers of the last call, freed by the next prepare(): result (ptr, len), WasmResult
  // ptr, input (ptr, len), flag.
  int32_t* pending() { return static_cast<int32_t*>(regs_store->Data()); }
};

// What a sandbox keeps with each pool slot: the module object of its isolate.
struct ModuleObject : PoolSlot::Extra {
  v8::Global<v8::WasmModuleObject> object;
};

v8::Global<v8::WasmModuleObject>& module_object(PoolSlot& slot) {
  if (!slot.extra) slot.extra = std::make_unique<ModuleObject>();
  return static_cast<ModuleObject&>(*slot.extra).object;
}

}  // namespace

struct Sandbox::Impl : public WasiHost {
  explicit Impl(PoolOptions pool_options) : pool(std::move(pool_options)) {}

  v8::Isolate* isolate = nullptr;
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator;
  v8::Global<v8::Context> context;
  v8::Global<v8::Function> instance_constructor;
  v8::Global<v8::Object> imports;
  v8::Global<v8::Function> glue_factory;
  v8::Global<v8::Function> each_glue_factory;
  // process_each(): the each-glue's regs, and the staging buffers of its input (encoded
  // messages), their lengths, its output (result bytes) and their lengths.
  v8::Global<v8::Int32Array> each_regs;
  std::shared_ptr<v8::BackingStore> each_regs_store;
  Staging each_input, each_lens, each_output, each_outs;
  Watchdog::Slot* watchdog_slot = nullptr;
  InstancePool pool;
  SandboxStats stats;

  // The call in progress (guest code runs only inside Impl::guarded).
  Instance* current = nullptr;
  const Module* current_module = nullptr;
  std::optional<int32_t> exit_code;
  // When > 0, the time limit of the next guarded calls instead of the module's (see process()).
  uint32_t timeout_override_ms = 0;
  // Set by process_each(): guarded calls are runs of messages, each with the module's own time
  // limit, the step counter at `step_progress` telling the watchdog when the next one starts.
  const int32_t* step_progress = nullptr;
  uint32_t step_timeout_ms = 0;  // each message's limit then (0: the module's)

  // Set by near_heap_limit() until guarded() has failed the call; then recover_heap() is due.
  bool heap_exhausted = false;
  bool heap_recovery_pending = false;
  size_t heap_limit_at_exhaustion = 0;

  // Depth of Sandbox::Scope objects alive on this thread for this sandbox.
  int scope_depth = 0;

  // Module log rate limit.
  int64_t log_window_start = 0;
  int log_lines_in_window = 0;
  uint64_t log_bytes_dropped_in_window = 0;

  ~Impl() override {
    pool.clear();
    each_regs.Reset();
    each_glue_factory.Reset();
    glue_factory.Reset();
    imports.Reset();
    instance_constructor.Reset();
    context.Reset();
    if (watchdog_slot) Watchdog::instance().unregister_isolate(watchdog_slot);
    if (isolate) isolate->Dispose();
  }

  // WasiHost
  void guest_memory(uint8_t** base, size_t* size) override {
    *base = nullptr;
    *size = 0;
    if (!current || current->memory.IsEmpty()) return;
    v8::Local<v8::ArrayBuffer> buffer = current->memory.Get(isolate)->Buffer();
    *base = static_cast<uint8_t*>(buffer->Data());
    *size = buffer->ByteLength();
  }

  // Starts a new one-second window of the module log rate limit when the second has changed,
  // reporting what the last one dropped.
  void roll_log_window() {
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    if (now == log_window_start) return;
    if (log_lines_in_window > kLogLinesPerSecond || log_bytes_dropped_in_window > 0) {
      log::get("etl.module")
          .warn(
              "{}: {} output lines dropped (limit {}/s), {} output bytes dropped (limits {} "
              "bytes per write, {} bytes per line)",
              current_module ? current_module->id() : "?",
              std::max(0, log_lines_in_window - kLogLinesPerSecond), kLogLinesPerSecond,
              log_bytes_dropped_in_window, kMaxWriteBytesPerCall, kMaxOutputLineBytes);
    }
    log_window_start = now;
    log_lines_in_window = 0;
    log_bytes_dropped_in_window = 0;
  }

  void module_output(int fd, std::string_view line) override {
    roll_log_window();
    if (++log_lines_in_window > kLogLinesPerSecond) {
      ++stats.log_lines_dropped;
      return;
    }
    if (line.size() > kMaxOutputLineBytes) line = line.substr(0, kMaxOutputLineBytes);
    log::get("etl.module")
        .info("{} {}: {}", current_module ? current_module->id() : "?",
              fd == 1 ? "stdout" : "stderr", line);
  }

  void module_output_dropped(int, uint64_t bytes) override {
    roll_log_window();
    stats.output_bytes_dropped += bytes;
    log_bytes_dropped_in_window += bytes;
  }

  void module_exit(int32_t code) override { exit_code = code; }

  // Creates instances of a slot's module for the pool.
  InstancePool::Create creator(const std::shared_ptr<const Module>& module) {
    return [this, module](PoolSlot& slot) -> Result<std::unique_ptr<PooledInstance>> {
      auto made = instantiate(module, slot);
      if (!made.is_ok()) return made.status();
      return std::unique_ptr<PooledInstance>(std::move(*made));
    };
  }

  // After a guest call or an instantiation: the memory may have grown.
  // What V8 allocates for the instance besides its memory counts as ModuleInfo::instance_bytes()
  // (tables at their maximum): it is not measured per instance.
  void measure(Instance* instance) {
    instance->memory_bytes = view(instance).size + instance->fixed_bytes;
  }

  // V8 frees the memories of dropped instances at a garbage collection, and ~10 GiB of address
  // space go with each (trap handler): collect now when a sweep dropped some.
  PoolSweep after_sweep(PoolSweep sweep) {
    if (sweep.evicted > 0) isolate->LowMemoryNotification();
    return sweep;
  }

  // V8 calls this when the isolate's JavaScript heap is about to reach its limit; unless the
  // limit is raised, V8 then aborts the whole process ("Fatal javascript OOM"). Raise it enough
  // for the allocation in progress to finish, and end the call that is running: guarded() turns
  // it into a kLimitExceeded failure, and recover_heap() then drops every idle instance.
  // Runs on the sandbox's thread, inside whatever allocated.
  static size_t near_heap_limit(void* data, size_t current_limit, size_t initial_limit) {
    auto* impl = static_cast<Impl*>(data);
    if (!impl->heap_exhausted) impl->heap_limit_at_exhaustion = current_limit;
    impl->heap_exhausted = true;
    impl->isolate->TerminateExecution();
    ++impl->stats.heap_limit_reached;
    return current_limit + std::max<size_t>(initial_limit / 2, 16u << 20);
  }

  // After a call or warm-up that reached the heap limit: the instance it ran on is gone; drop
  // every idle instance too and collect, so that the next call finds room.
  void recover_heap() {
    if (!heap_recovery_pending) return;
    heap_recovery_pending = false;
    PoolSweep sweep = pool.evict_idle();
    isolate->LowMemoryNotification();
    log::get("etl.module")
        .warn(
            "the engine's heap limit of {} bytes was reached: the call was ended and {} idle "
            "instance(s) dropped",
            heap_limit_at_exhaustion, sweep.evicted);
  }

  // Runs `body` as one guarded guest call of `module`: the watchdog bounds it by the module's
  // timeout and any JavaScript exception, termination or proc_exit becomes a Status naming the
  // cause. `body` returns a Status for failures the host detects itself.
  template <typename Body>
  Status guarded(const Module& module, Instance* instance, Body&& body) {
    current = instance;
    current_module = &module;
    exit_code.reset();
    v8::TryCatch try_catch(isolate);
    const uint32_t timeout_ms =
        timeout_override_ms > 0 ? timeout_override_ms : module.settings().timeout_ms;
    // Read only for runs of messages: a single call's path has no clock read to spare.
    const auto armed = step_progress ? std::chrono::steady_clock::now()
                                     : std::chrono::steady_clock::time_point{};
    const uint32_t step_ms = step_timeout_ms > 0 ? step_timeout_ms : module.settings().timeout_ms;
    if (step_progress) {
      Watchdog::instance().arm_steps(watchdog_slot, timeout_ms, step_ms, step_progress);
    } else {
      Watchdog::instance().arm(watchdog_slot, timeout_ms);
    }
    Status status = body();
    bool terminated = Watchdog::instance().disarm(watchdog_slot);
    // A run of messages ended before its own limit: one message took its limit.
    const uint32_t limit_hit =
        step_progress &&
                std::chrono::steady_clock::now() - armed < std::chrono::milliseconds(timeout_ms)
            ? step_ms
            : timeout_ms;
    if (heap_exhausted) {
      // Ended by near_heap_limit(), whatever else happened: the heap is the cause.
      heap_exhausted = false;
      heap_recovery_pending = true;
      isolate->CancelTerminateExecution();
      status = Status(StatusCode::kLimitExceeded,
                      "the engine's heap limit of " + std::to_string(heap_limit_at_exhaustion) +
                          " bytes was reached (module tables, globals and instances live there); "
                          "the call was ended");
    } else if (terminated) {
      isolate->CancelTerminateExecution();
      status =
          Status(StatusCode::kTimeout, "timed out after " + std::to_string(limit_hit) + " ms");
    } else if (exit_code) {
      status = Status(StatusCode::kModuleFailed,
                      "module called proc_exit(" + std::to_string(*exit_code) + ")");
    } else if (try_catch.HasCaught()) {
      status = classify_exception(try_catch.Exception());
    } else if (!status.is_ok() && isolate->IsExecutionTerminating()) {
      isolate->CancelTerminateExecution();
    }
    current = nullptr;
    current_module = nullptr;
    return status;
  }

  Status classify_exception(v8::Local<v8::Value> exception) {
    std::string text = to_utf8(isolate, exception);
    if (text.find("Maximum call stack size exceeded") != std::string::npos) {
      return Status(StatusCode::kModuleFailed, "stack overflow");
    }
    // V8 formats traps as "RuntimeError: <reason>".
    static constexpr std::string_view kRuntimeError = "RuntimeError: ";
    if (text.rfind(kRuntimeError, 0) == 0) {
      std::string reason = text.substr(kRuntimeError.size());
      std::string message = "trap: " + reason;
      // A guest allocator usually traps when memory.grow fails at the limit: the figures let
      // the reader see whether that is what happened.
      if (current && !current->memory.IsEmpty() && current_module) {
        uint64_t used = current->memory.Get(isolate)->Buffer()->ByteLength();
        uint64_t limit = current_module->info().memory_max_pages.value_or(0) * kWasmPageSize;
        message += " (memory: " + std::to_string(used) + " of " + std::to_string(limit) + " bytes)";
      }
      return Status(StatusCode::kModuleFailed, message);
    }
    return Status(StatusCode::kModuleFailed, "module error: " + text);
  }

  // Calls an i32 export; false when it threw (the caught exception tells why).
  bool call(const v8::Global<v8::Function>& fn, std::initializer_list<int32_t> args,
            int32_t* result) {
    v8::Local<v8::Context> ctx = context.Get(isolate);
    v8::Local<v8::Value> argv[4];
    int argc = 0;
    for (int32_t a : args) argv[argc++] = v8::Integer::New(isolate, a);
    v8::MaybeLocal<v8::Value> r = fn.Get(isolate)->Call(ctx, v8::Undefined(isolate), argc, argv);
    v8::Local<v8::Value> value;
    if (!r.ToLocal(&value)) return false;
    if (result) *result = value->IsInt32() ? value.As<v8::Int32>()->Value() : 0;
    return true;
  }

  struct View {
    uint8_t* base;
    size_t size;
    // Host pointer to [ptr, ptr + len) when in bounds, else nullptr. Overflow-safe.
    uint8_t* range(uint32_t ptr, uint64_t len) const {
      if (ptr > size || len > size - ptr) return nullptr;
      return base + ptr;
    }
  };

  // The memory must be re-read after every guest call: memory.grow detaches the old buffer.
  View view(Instance* instance) {
    v8::Local<v8::ArrayBuffer> buffer = instance->memory.Get(isolate)->Buffer();
    return {static_cast<uint8_t*>(buffer->Data()), buffer->ByteLength()};
  }

  static Status failed(std::string message) {
    return Status(StatusCode::kModuleFailed, std::move(message));
  }
  static Status caught() { return Status(StatusCode::kModuleFailed, "exception"); }

  // One guest entry point: allocates `size` bytes of guest memory (after freeing the previous
  // call's buffers), lets `write` fill them, and calls `fn` on them. Returns the input pointer
  // and the WasmResult pointer.
  template <typename Write>
  Status enter(Instance* inst, const v8::Global<v8::Function>& fn, uint64_t size, Write&& write,
               uint32_t* input_ptr, int32_t* result_ptr) {
    if (size > INT32_MAX) {
      return Status(StatusCode::kLimitExceeded,
                    "input of " + std::to_string(size) + " bytes is too large for a wasm32 module");
    }
    int32_t ptr = 0;
    if (!call(inst->prepare, {static_cast<int32_t>(size)}, &ptr)) return caught();
    *input_ptr = static_cast<uint32_t>(ptr);
    uint8_t* dst = view(inst).range(*input_ptr, size);
    if (!dst || (ptr == 0 && size > 0)) {
      return failed("alloc(" + std::to_string(size) + ") returned an out-of-bounds pointer");
    }
    write(dst);
    if (!call(fn, {ptr, static_cast<int32_t>(size)}, result_ptr)) return caught();
    return Status::ok();
  }

  // Reads the WasmResult at `result_ptr` and hands the result bytes to `decode`; the result,
  // the WasmResult and the input buffer are freed by the next call (module-abi.md, steps 3-4).
  template <typename Decode>
  Status read_output(const Module& module, Instance* inst, int32_t result_ptr, uint32_t input_ptr,
                     uint64_t input_size, Decode&& decode) {
    View v = view(inst);
    inst->memory_bytes = v.size + inst->fixed_bytes;
    // A null pointer is what a guest returns when it ran out of memory: 8 bytes at address 0
    // are in bounds, so it needs its own check.
    if (result_ptr == 0) return failed("module returned a null result pointer");
    const uint8_t* wasm_result = v.range(static_cast<uint32_t>(result_ptr), 8);
    if (!wasm_result) return failed("result pointer out of bounds");
    uint32_t ptr, len;
    std::memcpy(&ptr, wasm_result, 4);
    std::memcpy(&len, wasm_result + 4, 4);
    if (len > module.settings().max_output_bytes) {
      return Status(StatusCode::kLimitExceeded,
                    "result of " + std::to_string(len) + " bytes exceeds the output limit of " +
                        std::to_string(module.settings().max_output_bytes) + " bytes");
    }
    const uint8_t* bytes = v.range(ptr, len);
    if (!bytes) return failed("result data out of bounds");
    Status decoded = decode(std::span<const uint8_t>(bytes, len));
    if (!decoded.is_ok()) return failed("invalid result encoding: " + decoded.message());
    int32_t* pending = inst->pending();
    pending[0] = static_cast<int32_t>(ptr);
    pending[1] = static_cast<int32_t>(len);
    pending[2] = result_ptr;
    pending[3] = static_cast<int32_t>(input_ptr);
    pending[4] = static_cast<int32_t>(input_size);
    pending[5] = 1;
    return Status::ok();
  }

  // Copies `data` into a fresh guest buffer from alloc() (rare paths: the module's config).
  Status write_guest(Instance* inst, std::string_view data, int32_t* ptr) {
    if (!call(inst->alloc, {static_cast<int32_t>(data.size())}, ptr)) return caught();
    uint8_t* dst = view(inst).range(static_cast<uint32_t>(*ptr), data.size());
    if (!dst || (*ptr == 0 && !data.empty())) {
      return failed("alloc(" + std::to_string(data.size()) + ") returned an out-of-bounds pointer");
    }
    std::memcpy(dst, data.data(), data.size());
    return Status::ok();
  }

  Result<std::unique_ptr<Instance>> instantiate(const std::shared_ptr<const Module>& module,
                                                PoolSlot& slot) {
    v8::Local<v8::Context> ctx = context.Get(isolate);
    v8::Global<v8::WasmModuleObject>& module_object_global = module_object(slot);
    if (module_object_global.IsEmpty()) {
      v8::Local<v8::WasmModuleObject> object;
      if (!v8::WasmModuleObject::FromCompiledModule(isolate, module->compiled()).ToLocal(&object)) {
        return Status(StatusCode::kInternal, "cannot create module object for " + module->id());
      }
      module_object_global.Reset(isolate, object);
    }
    auto inst = std::make_unique<Instance>();
    inst->fixed_bytes = module->info().instance_bytes();
    Status status = guarded(*module, inst.get(), [&]() -> Status {
      v8::Local<v8::Value> args[] = {module_object_global.Get(isolate), imports.Get(isolate)};
      v8::Local<v8::Object> object;
      if (!instance_constructor.Get(isolate)->NewInstance(ctx, 2, args).ToLocal(&object)) {
        return caught();
      }
      v8::Local<v8::Value> exports_value;
      if (!object->Get(ctx, v8::String::NewFromUtf8Literal(isolate, "exports"))
               .ToLocal(&exports_value)) {
        return caught();
      }
      v8::Local<v8::Object> exports = exports_value.As<v8::Object>();
      auto get = [&](const char* name) -> v8::Local<v8::Value> {
        v8::Local<v8::Value> v;
        if (!exports->Get(ctx, v8::String::NewFromUtf8(isolate, name).ToLocalChecked())
                 .ToLocal(&v)) {
          return v8::Undefined(isolate);
        }
        return v;
      };
      inst->object.Reset(isolate, object);
      inst->memory.Reset(isolate, get("memory").As<v8::WasmMemoryObject>());
      inst->alloc.Reset(isolate, get("alloc").As<v8::Function>());
      inst->dealloc.Reset(isolate, get("dealloc").As<v8::Function>());
      inst->process_message.Reset(isolate, get("process_message").As<v8::Function>());
      const ModuleInfo& info = module->info();
      if (info.has_process_batch) {
        inst->process_batch.Reset(isolate, get("process_batch").As<v8::Function>());
      }
      inst->regs_store = v8::ArrayBuffer::NewBackingStore(isolate, 6 * sizeof(int32_t));
      std::memset(inst->regs_store->Data(), 0, 6 * sizeof(int32_t));
      v8::Local<v8::Int32Array> regs =
          v8::Int32Array::New(v8::ArrayBuffer::New(isolate, inst->regs_store), 0, 6);
      inst->regs.Reset(isolate, regs);
      v8::Local<v8::Value> glue_args[] = {get("alloc"), get("dealloc"), regs};
      v8::Local<v8::Value> prepare;
      if (!glue_factory.Get(isolate)
               ->Call(ctx, v8::Undefined(isolate), 3, glue_args)
               .ToLocal(&prepare) ||
          !prepare->IsFunction()) {
        return caught();
      }
      inst->prepare.Reset(isolate, prepare.As<v8::Function>());
      if (info.has_initialize) {
        v8::Global<v8::Function> initialize(isolate, get("_initialize").As<v8::Function>());
        if (!call(initialize, {}, nullptr)) return caught();
      }
      if (info.has_init_module) {
        v8::Global<v8::Function> init(isolate, get("init_module").As<v8::Function>());
        const std::string& config = module->settings().config_json;
        int32_t ok = 0;
        if (config.empty()) {
          if (!call(init, {0, 0}, &ok)) return caught();
        } else {
          int32_t ptr = 0;
          Status s = write_guest(inst.get(), config, &ptr);
          if (!s.is_ok()) return s;
          if (!call(init, {ptr, static_cast<int32_t>(config.size())}, &ok)) return caught();
          if (!call(inst->dealloc, {ptr, static_cast<int32_t>(config.size())}, nullptr)) {
            return caught();
          }
        }
        if (ok == 0) {
          ++stats.init_rejections;
          log::get("etl.module")
              .warn(
                  "{}: init_module rejected its configuration; the module "
                  "runs with its defaults",
                  module->id());
        }
      }
      return Status::ok();
    });
    if (!status.is_ok()) {
      return status.with_context("cannot instantiate module " + module->id());
    }
    measure(inst.get());
    ++stats.instances_created;
    return inst;
  }

  // One guest call of `export_fn` on the bincode encoding of `input`, decoding the result into
  // `output`; `check()` may still refuse the decoded output (the instance is then discarded).
  template <typename Input, typename Output, typename Check>
  Status call_export(const std::shared_ptr<const Module>& module,
                     v8::Global<v8::Function> Instance::*export_fn, const Input& input,
                     Output* output, Check&& check) {
    return with_instance(module, [&](Instance* inst) -> Status {
      const uint64_t size = bincode::encoded_size(input);
      uint32_t input_ptr = 0;
      int32_t result_ptr = 0;
      Status s = enter(
          inst, inst->*export_fn, size, [&](uint8_t* dst) { bincode::encode(input, dst); },
          &input_ptr, &result_ptr);
      if (!s.is_ok()) return s;
      s = read_output(
          *module, inst, result_ptr, input_ptr, size,
          [&](std::span<const uint8_t> bytes) { return bincode::decode(bytes, output); });
      return s.is_ok() ? check() : s;
    });
  }

  // Grows `staging` to at least `bytes`. What it held is not kept: callers grow it before
  // filling it, or after reading it.
  void reserve(Staging& staging, size_t bytes) {
    if (staging.capacity >= bytes && staging.store) return;
    const size_t capacity = std::max(bytes, staging.capacity * 2);
    staging.store = v8::ArrayBuffer::NewBackingStore(isolate, capacity);
    staging.capacity = capacity;
  }

  template <typename Array>
  v8::Local<Array> view_of(const Staging& staging, size_t length) {
    return Array::New(v8::ArrayBuffer::New(isolate, staging.store), 0, length);
  }

  // The each-glue of `inst`, made at its first use.
  bool each_function(Instance* inst, v8::Local<v8::Function>* out) {
    if (inst->each.IsEmpty()) {
      v8::Local<v8::Context> ctx = context.Get(isolate);
      v8::Local<v8::Value> args[] = {inst->alloc.Get(isolate),           inst->dealloc.Get(isolate),
                                     inst->process_message.Get(isolate), inst->memory.Get(isolate),
                                     each_regs.Get(isolate),             inst->regs.Get(isolate)};
      v8::Local<v8::Value> each;
      if (!each_glue_factory.Get(isolate)
               ->Call(ctx, v8::Undefined(isolate), 6, args)
               .ToLocal(&each) ||
          !each->IsFunction()) {
        return false;
      }
      inst->each.Reset(isolate, each.As<v8::Function>());
    }
    *out = inst->each.Get(isolate);
    return true;
  }

  // One entry of the each-glue on `inst` for messages [*next, n) of the staged input (input
  // offset *input_offset): decodes every result it copied out into `out`, and on return
  // *next and *input_offset are past the messages that ran. A failure is that of message *next
  // (the caller records it and goes on after it, on another instance).
  Status run_each(const Module& module, Instance* inst, size_t n, size_t* next,
                  size_t* input_offset, std::vector<Result<ProcessResult>>& out) {
    int32_t* regs = static_cast<int32_t*>(each_regs_store->Data());
    v8::Local<v8::Function> each;
    if (!each_function(inst, &each)) return caught();
    v8::Local<v8::Context> ctx = context.Get(isolate);
    const auto max_output = static_cast<int32_t>(
        std::min<uint64_t>(module.settings().max_output_bytes, INT32_MAX));
    for (;;) {
      regs[0] = static_cast<int32_t>(n);
      regs[1] = static_cast<int32_t>(*next);
      regs[2] = max_output;
      regs[3] = static_cast<int32_t>(*input_offset);
      regs[4] = 0;
      regs[5] = 0;
      v8::Local<v8::Value> args[] = {
          view_of<v8::Uint8Array>(each_input, each_input.capacity),
          view_of<v8::Int32Array>(each_lens, n),
          view_of<v8::Uint8Array>(each_output, each_output.capacity),
          view_of<v8::Int32Array>(each_outs, n)};
      const bool returned = !each->Call(ctx, v8::Undefined(isolate), 4, args).IsEmpty();
      // Whatever stopped the loop, the results it copied out are good.
      const auto* lens = reinterpret_cast<const int32_t*>(each_outs.data());
      const size_t reached = static_cast<size_t>(regs[1]);
      size_t offset = 0;
      for (size_t k = *next; k < reached && k < n; ++k) {
        const size_t len = static_cast<size_t>(lens[k]);
        ProcessResult r;
        Status decoded =
            bincode::decode(std::span<const uint8_t>(each_output.data() + offset, len), &r);
        offset += len;
        if (decoded.is_ok()) {
          out[k] = std::move(r);
        } else {
          out[k] = failed("invalid result encoding: " + decoded.message());
        }
      }
      stats.calls += reached - *next;
      *next = std::min(reached, n);
      *input_offset = static_cast<size_t>(regs[3]);
      measure(inst);
      if (!returned) return caught();
      switch (regs[5]) {
        case 0:
          return Status::ok();
        case 1:
          return failed("alloc(" + std::to_string(lens_in(*next)) +
                        ") returned an out-of-bounds pointer");
        case 2:
          return failed("module returned a null result pointer");
        case 3:
          return failed("result pointer out of bounds");
        case 4:
          return Status(StatusCode::kLimitExceeded,
                        "result of " + std::to_string(static_cast<uint32_t>(regs[6])) +
                            " bytes exceeds the output limit of " +
                            std::to_string(module.settings().max_output_bytes) + " bytes");
        case 5:
          return failed("result data out of bounds");
        case 6:
          break;  // below
        default:
          return failed("the call loop stopped for an unknown reason");
      }
      // The output buffer is full: take this message's result from guest memory (the glue
      // checked its bounds), leave its buffers for the next entry to free, grow, go on.
      const size_t k = *next;
      const auto input_ptr = static_cast<uint32_t>(regs[6]);
      const auto input_len = static_cast<uint32_t>(regs[7]);
      Status s = read_output(module, inst, regs[8], input_ptr, input_len,
                             [&](std::span<const uint8_t> bytes) {
                               reserve(each_output, bytes.size() * 2);
                               ProcessResult r;
                               Status decoded = bincode::decode(bytes, &r);
                               if (decoded.is_ok()) out[k] = std::move(r);
                               return decoded;
                             });
      if (!s.is_ok()) return s;
      ++stats.calls;
      *next = k + 1;
      *input_offset += input_len;
      if (*next >= n) return Status::ok();
    }
  }

  size_t lens_in(size_t k) const {
    return static_cast<size_t>(reinterpret_cast<const int32_t*>(each_lens.data())[k]);
  }

  // Runs one guest entry point on an instance of `module`: `run(instance)` does the ABI steps.
  // The instance comes from the pool and goes back to it on success; it is discarded on
  // failure.
  template <typename Run>
  Status with_instance(const std::shared_ptr<const Module>& module, Run&& run) {
    // Entering the isolate and context costs tens of ns: skip it inside a Sandbox::Scope.
    std::optional<v8::Isolate::Scope> isolate_scope;
    if (scope_depth == 0) isolate_scope.emplace(isolate);
    v8::HandleScope handles(isolate);
    std::optional<v8::Context::Scope> context_scope;
    if (scope_depth == 0) context_scope.emplace(context.Get(isolate));
    PoolSlot& slot = pool.slot(module);
    const uint32_t saved_override = timeout_override_ms;
    const uint32_t limit_ms =
        timeout_override_ms > 0 ? timeout_override_ms : module->settings().timeout_ms;
    InstancePool::AcquireInfo info;
    // A wait for the creation rate limit comes out of the call's time limit: what is left
    // bounds the instantiation and the call.
    auto after_wait = [&] {
      if (info.waited.count() == 0) return;
      const auto waited_ms = std::chrono::ceil<std::chrono::milliseconds>(info.waited).count();
      timeout_override_ms =
          static_cast<uint32_t>(std::max<int64_t>(1, static_cast<int64_t>(limit_ms) - waited_ms));
    };
    auto instantiate_after_wait = [&](PoolSlot& s) -> Result<std::unique_ptr<PooledInstance>> {
      after_wait();
      auto made = instantiate(module, s);
      if (!made.is_ok()) return made.status();
      return std::unique_ptr<PooledInstance>(std::move(*made));
    };
    // One pointer captured: std::function keeps it without allocating (this runs per call).
    InstancePool::Create create = [f = &instantiate_after_wait](PoolSlot& s) { return (*f)(s); };
    auto leased = pool.acquire(slot, std::chrono::milliseconds(limit_ms), create, &info);
    if (!leased.is_ok()) {
      timeout_override_ms = saved_override;
      ++stats.failed_calls;
      recover_heap();
      return leased.status();
    }
    after_wait();
    if (info.reused) ++stats.instances_reused;
    std::unique_ptr<Instance> instance(static_cast<Instance*>(leased->release()));
    ++stats.calls;
    Status status = guarded(*module, instance.get(), [&] { return run(instance.get()); });
    timeout_override_ms = saved_override;
    if (!status.is_ok()) {
      ++stats.failed_calls;
      ++stats.instances_discarded;
      pool.discard(slot, std::move(instance));
      recover_heap();
      return status;
    }
    stats.last_call_memory_bytes = instance->memory_bytes;
    pool.release(slot, std::move(instance));
    return status;
  }
};

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

struct Sandbox::Scope::Entered {
  explicit Entered(Impl* impl)
      : isolate_scope(impl->isolate),
        handles(impl->isolate),
        context_scope(impl->context.Get(impl->isolate)) {}
  v8::Isolate::Scope isolate_scope;
  v8::HandleScope handles;
  v8::Context::Scope context_scope;
};

Sandbox::Scope::Scope(Sandbox& sandbox)
    : impl_(sandbox.impl_.get()), entered_(std::make_unique<Entered>(impl_)) {
  ++impl_->scope_depth;
}

Sandbox::Scope::~Scope() { --impl_->scope_depth; }
Sandbox::~Sandbox() = default;

const SandboxStats& Sandbox::stats() const { return impl_->stats; }

uint64_t Sandbox::heap_limit_for(uint64_t max_memory_bytes) {
  if (max_memory_bytes >= kDefaultHeapLimitBytes - kHeapHeadroomBytes) return 0;
  return max_memory_bytes + kHeapHeadroomBytes;
}

uint64_t Sandbox::heap_limit_bytes() const {
  v8::HeapStatistics heap;
  impl_->isolate->GetHeapStatistics(&heap);
  return heap.heap_size_limit();
}

Result<std::unique_ptr<Sandbox>> Sandbox::create(PoolOptions pool, uint64_t heap_limit_bytes) {
  if (heap_limit_bytes == 0) heap_limit_bytes = heap_limit_for(pool.max_memory_bytes);
  auto impl = std::make_unique<Impl>(std::move(pool));
  impl->allocator.reset(v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = impl->allocator.get();
  if (heap_limit_bytes > 0) params.constraints.ConfigureDefaultsFromHeapSize(0, heap_limit_bytes);
  impl->isolate = v8::Isolate::New(params);
  if (!impl->isolate) return Status(StatusCode::kInternal, "cannot create a V8 isolate");
  v8::Isolate* isolate = impl->isolate;
  isolate->AddNearHeapLimitCallback(&Impl::near_heap_limit, impl.get());
  // Back to the configured limit once the heap has shrunk again (after recover_heap()).
  isolate->AutomaticallyRestoreInitialHeapLimit(0.5);
  {
    v8::Isolate::Scope isolate_scope(isolate);
    v8::HandleScope handles(isolate);
    v8::Local<v8::Context> ctx = v8::Context::New(isolate);
    v8::Context::Scope context_scope(ctx);
    impl->context.Reset(isolate, ctx);
    v8::Local<v8::Value> webassembly, constructor;
    if (!ctx->Global()
             ->Get(ctx, v8::String::NewFromUtf8Literal(isolate, "WebAssembly"))
             .ToLocal(&webassembly) ||
        !webassembly->IsObject() ||
        !webassembly.As<v8::Object>()
             ->Get(ctx, v8::String::NewFromUtf8Literal(isolate, "Instance"))
             .ToLocal(&constructor) ||
        !constructor->IsFunction()) {
      return Status(StatusCode::kInternal, "V8 has no WebAssembly.Instance");
    }
    impl->instance_constructor.Reset(isolate, constructor.As<v8::Function>());
    impl->imports.Reset(isolate, make_wasi_imports(isolate, ctx, impl.get()));

    v8::Local<v8::Script> script;
    v8::Local<v8::Value> factory;
    if (!v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(isolate, kGlueSource))
             .ToLocal(&script) ||
        !script->Run(ctx).ToLocal(&factory) || !factory->IsFunction()) {
      return Status(StatusCode::kInternal, "cannot compile the call glue");
    }
    impl->glue_factory.Reset(isolate, factory.As<v8::Function>());
    if (!v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(isolate, kEachGlueSource))
             .ToLocal(&script) ||
        !script->Run(ctx).ToLocal(&factory) || !factory->IsFunction()) {
      return Status(StatusCode::kInternal, "cannot compile the per-message call loop");
    }
    impl->each_glue_factory.Reset(isolate, factory.As<v8::Function>());
    impl->each_regs_store = v8::ArrayBuffer::NewBackingStore(isolate, 16 * sizeof(int32_t));
    std::memset(impl->each_regs_store->Data(), 0, 16 * sizeof(int32_t));
    impl->each_regs.Reset(
        isolate, v8::Int32Array::New(v8::ArrayBuffer::New(isolate, impl->each_regs_store), 0, 16));
  }
  impl->watchdog_slot = Watchdog::instance().register_isolate(isolate);
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

Result<std::shared_ptr<const Module>> Sandbox::load(std::string id, std::span<const uint8_t> binary,
                                                    InstanceSettings settings) {
  auto info = inspect_module(binary);
  if (!info.is_ok()) return info.status();
  auto capped = limit_memory(binary, settings.memory_limit_bytes);
  if (!capped.is_ok()) return capped.status();
  auto capped_info = inspect_module(*capped);
  if (!capped_info.is_ok()) return capped_info.status();

  v8::Isolate* isolate = impl_->isolate;
  v8::Isolate::Scope isolate_scope(isolate);
  v8::HandleScope handles(isolate);
  v8::Context::Scope context_scope(impl_->context.Get(isolate));
  v8::TryCatch try_catch(isolate);
  v8::Local<v8::WasmModuleObject> object;
  const bool compiled_ok =
      v8::WasmModuleObject::Compile(isolate,
                                    v8::MemorySpan<const uint8_t>(capped->data(), capped->size()))
          .ToLocal(&object);
  // The heap limit reached outside a guest call (near_heap_limit() asked for a termination):
  // this load fails, not the next call.
  if (impl_->heap_exhausted) {
    impl_->heap_exhausted = false;
    impl_->heap_recovery_pending = true;
    isolate->CancelTerminateExecution();
    impl_->recover_heap();
    return Status(StatusCode::kLimitExceeded,
                  "the engine's heap limit of " + std::to_string(impl_->heap_limit_at_exhaustion) +
                      " bytes was reached while compiling module " + id);
  }
  if (!compiled_ok) {
    std::string why = try_catch.HasCaught() ? to_utf8(isolate, try_catch.Exception())
                                            : std::string("compilation failed");
    return Status(StatusCode::kInvalidModule, why);
  }
  auto compiled = std::make_unique<v8::CompiledWasmModule>(object->GetCompiledModule());
  auto module = std::make_shared<const Module>(std::move(id), std::move(*capped_info),
                                               std::move(settings), std::move(compiled));
  // This isolate already has the module object: keep it.
  module_object(impl_->pool.slot(module)).Reset(isolate, object);
  // Forget modules that nobody holds any more.
  impl_->pool.forget_vanished();
  return std::shared_ptr<const Module>(module);
}

Result<ProcessResult> Sandbox::process(const std::shared_ptr<const Module>& module,
                                       const Message& message, uint32_t timeout_ms) {
  ProcessResult result;
  impl_->timeout_override_ms = timeout_ms;
  Status status = impl_->call_export(module, &Instance::process_message, message, &result,
                                     [] { return Status::ok(); });
  impl_->timeout_override_ms = 0;
  if (!status.is_ok()) return status;
  return result;
}

std::vector<Result<ProcessResult>> Sandbox::process_each(
    const std::shared_ptr<const Module>& module, std::span<const Message* const> messages,
    uint32_t timeout_ms, uint32_t run_timeout_ms, bool stop_at_failure) {
  Impl& impl = *impl_;
  const size_t n = messages.size();
  std::vector<Result<ProcessResult>> out(n, Status(StatusCode::kInternal, "not run"));
  if (n == 0) return out;
  size_t total = 0;
  for (const Message* m : messages) total += bincode::encoded_size(*m);
  if (total > INT32_MAX / 2 || n > INT32_MAX / 2) {
    // Too large for one staging buffer: one entry per message.
    for (size_t i = 0; i < n; ++i) out[i] = process(module, *messages[i], timeout_ms);
    return out;
  }
  if (n == 1 && run_timeout_ms == 0) {
    out[0] = process(module, *messages[0], timeout_ms);
    return out;
  }
  std::optional<v8::Isolate::Scope> isolate_scope;
  if (impl.scope_depth == 0) isolate_scope.emplace(impl.isolate);
  v8::HandleScope handles(impl.isolate);
  std::optional<v8::Context::Scope> context_scope;
  if (impl.scope_depth == 0) context_scope.emplace(impl.context.Get(impl.isolate));
  impl.reserve(impl.each_input, std::max<size_t>(total, 1));
  impl.reserve(impl.each_lens, n * sizeof(int32_t));
  impl.reserve(impl.each_outs, n * sizeof(int32_t));
  impl.reserve(impl.each_output, std::max<size_t>(2 * total, 64 << 10));
  {
    uint8_t* at = impl.each_input.data();
    auto* lens = reinterpret_cast<int32_t*>(impl.each_lens.data());
    for (size_t i = 0; i < n; ++i) {
      const size_t size = bincode::encoded_size(*messages[i]);
      bincode::encode(*messages[i], at);
      lens[i] = static_cast<int32_t>(size);
      at += size;
    }
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = run_timeout_ms > 0
                            ? Clock::now() + std::chrono::milliseconds(run_timeout_ms)
                            : Clock::time_point::max();
  size_t next = 0, input_offset = 0;
  impl.step_progress = static_cast<const int32_t*>(impl.each_regs_store->Data()) + 1;
  impl.step_timeout_ms = timeout_ms;
  while (next < n) {
    // The run's time left bounds the rest; each message also has the module's own limit.
    uint32_t left_ms = std::numeric_limits<int32_t>::max();
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        for (; next < n; ++next) {
          out[next] = Status(StatusCode::kTimeout,
                             "timed out after " + std::to_string(run_timeout_ms) + " ms");
        }
        break;
      }
      left_ms = static_cast<uint32_t>(left.count());
    }
    impl.timeout_override_ms = left_ms;
    Status status = impl.with_instance(module, [&](Instance* inst) {
      return impl.run_each(*module, inst, n, &next, &input_offset, out);
    });
    if (!status.is_ok()) {
      // The message that was running failed; its instance is gone. Go on after it.
      if (next < n) {
        out[next] = status;
        input_offset += impl.lens_in(next);
        ++next;
      }
      if (stop_at_failure) {
        out.erase(out.begin() + static_cast<std::ptrdiff_t>(next), out.end());
        break;
      }
    }
  }
  impl.step_progress = nullptr;
  impl.step_timeout_ms = 0;
  impl.timeout_override_ms = 0;
  return out;
}

namespace {

// process_batch on a span of messages or of pointers to them.
template <typename Messages>
Result<std::vector<ProcessResult>> run_batch(Sandbox::Impl& impl,
                                             const std::shared_ptr<const Module>& module,
                                             Messages messages, uint32_t timeout_ms) {
  if (!module->info().has_process_batch) {
    return Status(StatusCode::kInvalidArgument,
                  "module " + module->id() + " does not export process_batch");
  }
  std::vector<ProcessResult> results;
  impl.timeout_override_ms = timeout_ms;
  Status status = impl.call_export(module, &Instance::process_batch, messages, &results, [&] {
    if (results.size() == messages.size()) return Status::ok();
    return Sandbox::Impl::failed("process_batch returned " + std::to_string(results.size()) +
                                 " results for " + std::to_string(messages.size()) + " messages");
  });
  impl.timeout_override_ms = 0;
  if (!status.is_ok()) return status;
  return results;
}

}  // namespace

Result<std::vector<ProcessResult>> Sandbox::process_batch(
    const std::shared_ptr<const Module>& module, std::span<const Message> messages,
    uint32_t timeout_ms) {
  return run_batch(*impl_, module, messages, timeout_ms);
}

Result<std::vector<ProcessResult>> Sandbox::process_batch(
    const std::shared_ptr<const Module>& module, std::span<const Message* const> messages,
    uint32_t timeout_ms) {
  return run_batch(*impl_, module, messages, timeout_ms);
}

Status Sandbox::warm_up(const std::shared_ptr<const Module>& module, size_t count,
                        uint64_t* created) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  v8::HandleScope handles(impl_->isolate);
  v8::Context::Scope context_scope(impl_->context.Get(impl_->isolate));
  auto warmed = impl_->pool.warm(impl_->pool.slot(module), count, impl_->creator(module));
  impl_->recover_heap();
  if (!warmed.is_ok()) return warmed.status();
  if (created) *created = *warmed;
  return Status::ok();
}

std::optional<std::chrono::steady_clock::time_point> Sandbox::instance_ready_at(
    const std::shared_ptr<const Module>& module) {
  return impl_->pool.next_creation_at(impl_->pool.slot(module));
}

size_t Sandbox::idle_instances(const Module& module) const {
  PoolSlot* slot = impl_->pool.find(module.serial());
  return slot ? slot->idle() : 0;
}

void Sandbox::forget(const Module& module) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  impl_->pool.forget(module.serial());
}

void Sandbox::forget(std::string_view module_id) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  impl_->pool.forget(module_id);
}

void Sandbox::collect_garbage() {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  impl_->isolate->LowMemoryNotification();
}

uint64_t Sandbox::heap_used_bytes() {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  impl_->isolate->LowMemoryNotification();
  v8::HeapStatistics heap;
  impl_->isolate->GetHeapStatistics(&heap);
  return heap.used_heap_size();
}

PoolSweep Sandbox::collect_idle() {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  return impl_->after_sweep(impl_->pool.collect());
}

PoolSweep Sandbox::evict_idle(std::string_view module_id) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  return impl_->after_sweep(impl_->pool.evict_idle(module_id));
}

PoolSweep Sandbox::set_pool_settings(const std::string& module_id, const PoolSettings& settings) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  v8::HandleScope handles(impl_->isolate);
  v8::Context::Scope context_scope(impl_->context.Get(impl_->isolate));
  // Slots whose module has gone are skipped by the pool, so the creator always has one.
  InstancePool::Create create = [this](PoolSlot& slot) -> Result<std::unique_ptr<PooledInstance>> {
    auto module = slot.module();
    if (!module) return Status(StatusCode::kNotFound, "module " + slot.module_id() + " is gone");
    return impl_->creator(module)(slot);
  };
  PoolSweep sweep = impl_->after_sweep(impl_->pool.set_settings(module_id, settings, create));
  impl_->recover_heap();
  return sweep;
}

PoolSweep Sandbox::set_max_instances(uint64_t max_instances) {
  v8::Isolate::Scope isolate_scope(impl_->isolate);
  return impl_->after_sweep(impl_->pool.set_max_instances(max_instances));
}

PoolSettings Sandbox::pool_settings(std::string_view module_id) const {
  return impl_->pool.settings(module_id);
}

std::shared_ptr<const PoolFigures> Sandbox::pool_figures() const { return impl_->pool.figures(); }

}  // namespace wasmq::wasm
