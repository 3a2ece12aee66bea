#include "wasm/sandbox.h"

#include <limits>

#include "wasm/sandbox_impl.h"

namespace wasmq::wasm {

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
  // A trap's message names the export it happened in (Impl::trap_export): the frames are
  // captured when an exception is thrown, so this costs nothing on calls that do not throw.
  isolate->SetCaptureStackTraceForUncaughtExceptions(true, 64);
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

    Status glue = impl->compile_glue(ctx);
    if (!glue.is_ok()) return glue;
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
