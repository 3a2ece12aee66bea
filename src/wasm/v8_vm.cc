// The VM side of a Sandbox: the isolate's heap limit and its recovery, the WASI host (guest
// memory, module output, proc_exit), instantiation, and the classification of exceptions.
// Instantiation also binds what the ABI calls (exports, call glue) and runs _initialize and
// init_module, within the same guarded call.
#include "common/log.h"
#include "wasm/sandbox_impl.h"

namespace wasmq::wasm {
namespace {

// Lines a sandbox forwards from module stdout/stderr per second; the rest are counted.
constexpr int kLogLinesPerSecond = 100;

}  // namespace

std::string to_utf8(v8::Isolate* isolate, v8::Local<v8::Value> value) {
  v8::String::Utf8Value s(isolate, value);
  return *s ? std::string(*s, s.length()) : std::string("<unprintable>");
}

Sandbox::Impl::~Impl() {
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

void Sandbox::Impl::guest_memory(uint8_t** base, size_t* size) {
  *base = nullptr;
  *size = 0;
  if (!current || current->memory.IsEmpty()) return;
  v8::Local<v8::ArrayBuffer> buffer = current->memory.Get(isolate)->Buffer();
  *base = static_cast<uint8_t*>(buffer->Data());
  *size = buffer->ByteLength();
}

void Sandbox::Impl::roll_log_window() {
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

void Sandbox::Impl::module_output(int fd, std::string_view text, bool line_end) {
  std::string& pending = pending_output[fd == 1 ? 0 : 1];
  if (pending.empty() && line_end) return log_module_line(fd, text);
  const size_t room = kMaxOutputLineBytes - std::min(pending.size(), kMaxOutputLineBytes);
  if (text.size() > room) module_output_dropped(fd, text.size() - room);
  pending.append(text.substr(0, room));
  if (!line_end) return;
  log_module_line(fd, pending);
  pending.clear();
}

void Sandbox::Impl::flush_module_output() {
  for (int fd : {1, 2}) {
    std::string& pending = pending_output[fd - 1];
    if (pending.empty()) continue;
    log_module_line(fd, pending);
    pending.clear();
  }
}

void Sandbox::Impl::log_module_line(int fd, std::string_view line) {
  // The start of what the call wrote to stderr, for its failure (a Rust panic's message).
  if (fd == 2 && call_stderr.size() < kCallStderrBytes) {
    call_stderr.append(line.substr(0, kCallStderrBytes - call_stderr.size()));
    call_stderr += '\n';
  }
  roll_log_window();
  if (++log_lines_in_window > kLogLinesPerSecond) {
    ++stats.log_lines_dropped;
    return;
  }
  if (line.size() > kMaxOutputLineBytes) line = line.substr(0, kMaxOutputLineBytes);
  log::get("etl.module")
      .info("{} {}: {}", current_module ? current_module->id() : "?", fd == 1 ? "stdout" : "stderr",
            line);
}

void Sandbox::Impl::module_output_dropped(int, uint64_t bytes) {
  roll_log_window();
  stats.output_bytes_dropped += bytes;
  log_bytes_dropped_in_window += bytes;
}

InstancePool::Create Sandbox::Impl::creator(const std::shared_ptr<const Module>& module) {
  return [this, module](PoolSlot& slot) -> Result<std::unique_ptr<PooledInstance>> {
    auto made = instantiate(module, slot);
    if (!made.is_ok()) return made.status();
    return std::unique_ptr<PooledInstance>(std::move(*made));
  };
}

PoolSweep Sandbox::Impl::after_sweep(PoolSweep sweep) {
  if (sweep.evicted > 0) isolate->LowMemoryNotification();
  return sweep;
}

size_t Sandbox::Impl::near_heap_limit(void* data, size_t current_limit, size_t initial_limit) {
  auto* impl = static_cast<Impl*>(data);
  if (!impl->heap_exhausted) impl->heap_limit_at_exhaustion = current_limit;
  impl->heap_exhausted = true;
  impl->isolate->TerminateExecution();
  ++impl->stats.heap_limit_reached;
  return current_limit + std::max<size_t>(initial_limit / 2, 16u << 20);
}

void Sandbox::Impl::recover_heap() {
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

std::string Sandbox::Impl::trap_export(v8::Local<v8::Value> exception) {
  v8::Local<v8::StackTrace> trace = v8::Exception::GetStackTrace(exception);
  if (trace.IsEmpty()) return {};
  // The outermost wasm frame is the export the host called (V8 names it by the name section,
  // or by its export name when the module is stripped).
  std::string name;
  for (int i = 0; i < trace->GetFrameCount(); ++i) {
    v8::Local<v8::StackFrame> frame = trace->GetFrame(isolate, i);
    if (frame->IsWasm()) name = to_utf8(isolate, frame->GetFunctionName());
  }
  if (!name.empty() && name[0] == '$') name.erase(0, 1);
  return name;
}

// What a module wrote to stderr during the call, when it is a Rust panic's message: "panicked
// at 'kaboom', src/lib.rs:3:5" (or the newer two-line form), without the backtrace note.
static std::string panic_message(std::string_view stderr_text) {
  const size_t at = stderr_text.find("panicked at");
  if (at == std::string_view::npos) return {};
  std::string out;
  size_t start = stderr_text.rfind('\n', at);
  start = start == std::string_view::npos ? 0 : start + 1;
  std::string_view rest = stderr_text.substr(start);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.starts_with("note: ")) break;
    if (line.empty()) continue;
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out;
}

Status Sandbox::Impl::classify_exception(v8::Local<v8::Value> exception) {
  std::string text = to_utf8(isolate, exception);
  if (text.find("Maximum call stack size exceeded") != std::string::npos) {
    return Status(StatusCode::kModuleFailed, "stack overflow");
  }
  // V8 formats traps as "RuntimeError: <reason>".
  static constexpr std::string_view kRuntimeError = "RuntimeError: ";
  if (text.rfind(kRuntimeError, 0) == 0) {
    std::string reason = text.substr(kRuntimeError.size());
    std::string message = "trap: " + reason;
    if (std::string where = trap_export(exception); !where.empty()) message += " in " + where;
    if (std::string panic = panic_message(call_stderr); !panic.empty()) {
      message += ": " + panic;
    }
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

Result<std::unique_ptr<Instance>> Sandbox::Impl::instantiate(
    const std::shared_ptr<const Module>& module, PoolSlot& slot) {
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
      if (!exports->Get(ctx, v8::String::NewFromUtf8(isolate, name).ToLocalChecked()).ToLocal(&v)) {
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

}  // namespace wasmq::wasm
