// Internal to the sandbox (sandbox.cc, v8_vm.cc, abi_calls.cc): Sandbox::Impl and its instances.
#pragma once

#include <v8-array-buffer.h>
#include <v8-context.h>
#include <v8-exception.h>
#include <v8-function.h>
#include <v8-isolate.h>
#include <v8-local-handle.h>
#include <v8-persistent-handle.h>
#include <v8-primitive.h>
#include <v8-typed-array.h>
#include <v8-wasm.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "common/bincode.h"
#include "wasm/sandbox.h"
#include "wasm/wasi.h"
#include "wasm/watchdog.h"

namespace wasmq::wasm {

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

inline v8::Global<v8::WasmModuleObject>& module_object(PoolSlot& slot) {
  if (!slot.extra) slot.extra = std::make_unique<ModuleObject>();
  return static_cast<ModuleObject&>(*slot.extra).object;
}

// The text of a V8 value (an exception, a compile error); "<unprintable>" when it has none.
std::string to_utf8(v8::Isolate* isolate, v8::Local<v8::Value> value);

// What a Sandbox holds, and the call in progress. Members on the per-message path are defined
// here, inline (guarded, call, view, enter, read_output, call_export, with_instance); v8_vm.cc
// defines the rest of the VM side (the heap limit, the WASI host, instantiation, exception
// classification), abi_calls.cc the rest of the module ABI (the call glue, runs of messages).
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

  ~Impl() override;

  // WasiHost
  void guest_memory(uint8_t** base, size_t* size) override;
  // Starts a new one-second window of the module log rate limit when the second has changed,
  // reporting what the last one dropped.
  void roll_log_window();
  void module_output(int fd, std::string_view text, bool line_end) override;
  // Logs what is left of a line on stdout and stderr (at the end of a guarded call).
  void flush_module_output();
  void log_module_line(int fd, std::string_view line);
  std::string pending_output[2];  // stdout, stderr: the start of a line not ended yet
  // What the guarded call running now wrote to stderr, at most kCallStderrBytes.
  static constexpr size_t kCallStderrBytes = 1024;
  std::string call_stderr;
  void module_output_dropped(int, uint64_t bytes) override;
  void module_exit(int32_t code) override { exit_code = code; }

  // Creates instances of a slot's module for the pool.
  InstancePool::Create creator(const std::shared_ptr<const Module>& module);

  // After a guest call or an instantiation: the memory may have grown.
  // What V8 allocates for the instance besides its memory counts as ModuleInfo::instance_bytes()
  // (tables at their maximum): it is not measured per instance.
  void measure(Instance* instance) {
    instance->memory_bytes = view(instance).size + instance->fixed_bytes;
  }

  // V8 frees the memories of dropped instances at a garbage collection, and ~10 GiB of address
  // space go with each (trap handler): collect now when a sweep dropped some.
  PoolSweep after_sweep(PoolSweep sweep);

  // V8 calls this when the isolate's JavaScript heap is about to reach its limit; unless the
  // limit is raised, V8 then aborts the whole process ("Fatal javascript OOM"). Raise it enough
  // for the allocation in progress to finish, and end the call that is running: guarded() turns
  // it into a kLimitExceeded failure, and recover_heap() then drops every idle instance.
  // Runs on the sandbox's thread, inside whatever allocated.
  static size_t near_heap_limit(void* data, size_t current_limit, size_t initial_limit);

  // After a call or warm-up that reached the heap limit: the instance it ran on is gone; drop
  // every idle instance too and collect, so that the next call finds room.
  void recover_heap();

  // Runs `body` as one guarded guest call of `module`: the watchdog bounds it by the module's
  // timeout and any JavaScript exception, termination or proc_exit becomes a Status naming the
  // cause. `body` returns a Status for failures the host detects itself.
  template <typename Body>
  Status guarded(const Module& module, Instance* instance, Body&& body) {
    current = instance;
    current_module = &module;
    exit_code.reset();
    call_stderr.clear();
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
    if (!pending_output[0].empty() || !pending_output[1].empty()) flush_module_output();
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

  Status classify_exception(v8::Local<v8::Value> exception);
  // The export a trap happened in (the outermost wasm frame of its stack), or empty.
  std::string trap_export(v8::Local<v8::Value> exception);

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
  // A result longer than max_output_bytes. When the 8 bytes of {ptr, len} are printable text,
  // they most likely are text the module returned in place of them (the seed 001 document's
  // JSON ABI): the message says so.
  static Status output_limit_exceeded(uint32_t ptr, uint32_t len, uint64_t max_output_bytes) {
    std::string message = "result of " + std::to_string(len) +
                          " bytes exceeds the output limit of " +
                          std::to_string(max_output_bytes) + " bytes";
    std::string text;
    for (uint32_t word : {ptr, len}) {
      for (int i = 0; i < 4; ++i) {
        const char c = static_cast<char>((word >> (8 * i)) & 0xFF);
        if (c < 0x20 || c > 0x7E) return Status(StatusCode::kLimitExceeded, message);
        text += c;
      }
    }
    message += "; its {ptr, len} reads as the text \"" + text +
               "\": process_message must return a pointer to 8 bytes {ptr: u32, len: u32} of a "
               "bincode WasmResult (docs/module-abi.md), not to the result itself";
    return Status(StatusCode::kLimitExceeded, message);
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
      return output_limit_exceeded(ptr, len, module.settings().max_output_bytes);
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
  Status write_guest(Instance* inst, std::string_view data, int32_t* ptr);

  Result<std::unique_ptr<Instance>> instantiate(const std::shared_ptr<const Module>& module,
                                                PoolSlot& slot);

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
  bool each_function(Instance* inst, v8::Local<v8::Function>* out);

  // One entry of the each-glue on `inst` for messages [*next, n) of the staged input (input
  // offset *input_offset): decodes every result it copied out into `out`, and on return
  // *next and *input_offset are past the messages that ran. A failure is that of message *next
  // (the caller records it and goes on after it, on another instance).
  Status run_each(const Module& module, Instance* inst, size_t n, size_t* next,
                  size_t* input_offset, std::vector<Result<ProcessResult>>& out);

  // Compiles the call glue (kGlueSource, kEachGlueSource) in `ctx` and makes process_each()'s
  // regs; create() calls it inside the scopes it opens on the new isolate and context.
  Status compile_glue(v8::Local<v8::Context> ctx);

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

}  // namespace wasmq::wasm
