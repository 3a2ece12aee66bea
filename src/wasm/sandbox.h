// A Sandbox runs modules on one thread: it owns one V8 isolate and context, the per-isolate
// module objects, and the instances it keeps between calls in its InstancePool
// (instance_pool.h: bounds, warm-up, creation rate limit, idle and memory eviction, figures).
//
// Threading: create a Sandbox on the thread that will use it and use it only there (one per
// ETL worker; the CLI has one). Modules (engine.h) are shared across sandboxes.
//
// Failure model: a call that traps, times out, overflows the stack, calls proc_exit, breaks a
// limit or returns a malformed result fails with a Status naming the cause, and the instance it
// ran on is discarded; the next call gets a fresh instance. A module's own `error: Some(..)`
// result is not a failure of the call: it comes back in the ProcessResult and the instance stays.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "wasm/engine.h"
#include "wasm/instance_pool.h"

namespace wasmq::wasm {

// Counters of one sandbox; read on its thread.
struct SandboxStats {
  uint64_t calls = 0;  // guest entry points called for messages
  uint64_t failed_calls = 0;
  uint64_t instances_created = 0;
  uint64_t instances_reused = 0;     // calls served by an instance kept from an earlier call
  uint64_t instances_discarded = 0;  // after a failure
  uint64_t init_rejections = 0;      // init_module returned 0
  uint64_t log_lines_dropped = 0;    // module stdout/stderr lines over the rate limit
  uint64_t output_bytes_dropped = 0;  // fd_write bytes over the per-call or per-line bound
  uint64_t heap_limit_reached = 0;    // times the isolate's heap limit ended a call
  uint64_t last_call_memory_bytes =
      0;  // the memory of the instance the last successful call ran on
};

// What the JavaScript heap of a sandbox may hold beyond its pool's memory budget: module
// objects, the call glue, garbage not yet collected. The instances' own share of the heap is
// counted in the budget (InstanceCost), so the heap limit is reached only when that accounting
// falls short, and then fails one call instead of letting the heap run to V8's default.
inline constexpr uint64_t kHeapHeadroomBytes = 256ull << 20;
// The old generation V8 10.2 gives an isolate created without constraints on 64-bit (heap.cc:
// 700 MB * kSystemPointerSize / 4), whatever the machine's memory.
inline constexpr uint64_t kDefaultHeapLimitBytes = 1400ull << 20;

class Sandbox {
 public:
  // Creates the isolate on the calling thread, with a pool run by `pool`. `heap_limit_bytes`
  // bounds the isolate's JavaScript heap; 0: heap_limit_for(pool.max_memory_bytes). Reaching
  // it never aborts the process: the call in progress fails with kLimitExceeded ("the engine's
  // heap limit of N bytes was reached"), its instance and every idle instance of the sandbox
  // are dropped. initialize_engine() must have succeeded.
  static Result<std::unique_ptr<Sandbox>> create(PoolOptions pool = {},
                                                 uint64_t heap_limit_bytes = 0);
  // The heap limit create() gives a sandbox whose pool has `max_memory_bytes` when no
  // heap_limit_bytes is given: max_memory_bytes + kHeapHeadroomBytes, or 0 (V8's default,
  // kDefaultHeapLimitBytes) when that would be larger. Any thread.
  static uint64_t heap_limit_for(uint64_t max_memory_bytes);
  // The heap limit of this sandbox's isolate, as V8 reports it. The sandbox's thread.
  uint64_t heap_limit_bytes() const;

  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Validates `binary` (binary.h), caps its memory at settings.memory_limit_bytes and compiles
  // it. The module can then run in any Sandbox on any thread.
  Result<std::shared_ptr<const Module>> load(std::string id, std::span<const uint8_t> binary,
                                             InstanceSettings settings);

  // Runs process_message on one message. `timeout_ms` (when > 0) replaces the module's own
  // time limit for this call (callers pass what is left of a stage's or pipeline's budget).
  // The instance comes from the pool (instance_pool.h); a wait for the creation rate limit is
  // taken out of the time limit (the instantiation and the call get what is left).
  Result<ProcessResult> process(const std::shared_ptr<const Module>& module, const Message& message,
                                uint32_t timeout_ms = 0);

  // Runs process_batch on `messages` (the module must export it): one result per input, in
  // order. Any failure fails the whole batch. `timeout_ms` as for process(), for the whole call.
  Result<std::vector<ProcessResult>> process_batch(const std::shared_ptr<const Module>& module,
                                                   std::span<const Message> messages,
                                                   uint32_t timeout_ms = 0);
  // The same on messages held elsewhere (no copies).
  Result<std::vector<ProcessResult>> process_batch(const std::shared_ptr<const Module>& module,
                                                   std::span<const Message* const> messages,
                                                   uint32_t timeout_ms = 0);

  // Runs process_message on each of `messages`, in order, as the ABI says (alloc, call, dealloc
  // per message), but entering V8 once for the whole run rather than once per message: for
  // modules without process_batch. One outcome per message: a failure (trap, time limit, bad
  // result) fails that message only; its instance is discarded and the next message runs on
  // another. Each message has the time limit `timeout_ms` (0: the module's own), give or take a
  // quarter of it (the watchdog looks in on a run that often); `run_timeout_ms` (when > 0)
  // bounds the whole run (callers pass what is left of a stage's or pipeline's budget), and
  // messages not run by then fail with kTimeout. With `stop_at_failure`, the run ends after the
  // first message that fails: the result then holds the outcomes of the messages that ran, the
  // failed one last (the caller decides about the rest, e.g. after asking a circuit breaker).
  std::vector<Result<ProcessResult>> process_each(const std::shared_ptr<const Module>& module,
                                                  std::span<const Message* const> messages,
                                                  uint32_t timeout_ms = 0,
                                                  uint32_t run_timeout_ms = 0,
                                                  bool stop_at_failure = false);

  // Creates instances of `module` until `count` are idle (at most the module's max_pool_size,
  // stopping at the pool's memory budget), so that calls find them ready; `created`, when
  // given, receives how many it created. Not rate limited.
  Status warm_up(const std::shared_ptr<const Module>& module, size_t count,
                 uint64_t* created = nullptr);
  // When a call of `module` could start without waiting for its creation_rate_limit: nullopt
  // when it can now, else the time the pool's next token comes (InstancePool::next_creation_at).
  std::optional<std::chrono::steady_clock::time_point> instance_ready_at(
      const std::shared_ptr<const Module>& module);
  // Number of idle instances kept for `module`.
  size_t idle_instances(const Module& module) const;
  // Drops every instance and the module object of `module` held by this sandbox.
  void forget(const Module& module);
  // The same for every module object of `module_id`, with its pool settings and figures.
  void forget(std::string_view module_id);

  // A full garbage collection of this sandbox's isolate now: the module objects of forgotten
  // modules keep their compiled code alive until V8 collects them.
  void collect_garbage();

  // The bytes in use on this sandbox's JavaScript heap after a full garbage collection (tables,
  // globals, export wrappers and instance objects live there; wasm memories do not). For
  // measurements and tests: the collection is slow.
  uint64_t heap_used_bytes();

  // The pool's background cleanup (InstancePool::collect). When it dropped instances, V8 is
  // told memory is low, so that their memories are freed now rather than at some later GC.
  PoolSweep collect_idle();
  // Drops every idle instance of `module_id` (of every module when empty), then as above.
  PoolSweep evict_idle(std::string_view module_id = {});
  // Sets the pool settings of `module_id` and applies them now (InstancePool::set_settings).
  PoolSweep set_pool_settings(const std::string& module_id, const PoolSettings& settings);
  PoolSettings pool_settings(std::string_view module_id) const;
  // Sets the pool's bound on live instances (InstancePool::set_max_instances) and applies it now.
  PoolSweep set_max_instances(uint64_t max_instances);
  // The pool's figures; the object may be read from any thread, for as long as it is held.
  std::shared_ptr<const PoolFigures> pool_figures() const;

  const SandboxStats& stats() const;

  struct Impl;

  // Keeps the sandbox's isolate and context entered on this thread while it lives, so that the
  // calls made meanwhile skip entering them each (a loop of many calls is faster inside one).
  // Optional. Scopes of one sandbox nest; do not use another sandbox of the same thread inside.
  class Scope {
   public:
    explicit Scope(Sandbox& sandbox);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    struct Entered;
    Impl* impl_;
    std::unique_ptr<Entered> entered_;
  };

 private:
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wasmq::wasm
