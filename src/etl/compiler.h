// Module compilation apart from the ETL workers, on threads of their own:
// - the compile threads, each with a V8 isolate of its own, compile modules for the module
//   cache (ModuleCache::get on a miss), taking jobs from one queue. There are as many as ETL
//   workers: a worker waits for at most one compilation, so a compilation never waits behind
//   another (a module slow to compile holds only the worker that needs it). They keep nothing of
//   what they compiled: the module object an isolate made is forgotten and collected at once, so
//   a module dropped from the cache (or deleted) leaves no compiled code behind in any isolate.
// - the upload thread runs upload checks one at a time (Orchestrator::upload_module): the
//   bounded compile check in a child process (compile_check.h), then the registry's add. An
//   upload that compiles for long holds this thread only, never a worker or the compile thread.
//
// Threads: compile() and submit_upload() from any thread. compile() blocks its caller until the
// compile thread has compiled the module; a job of submit_upload() runs on the upload thread.
// The destructor runs the queued jobs, then joins both threads.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

class ModuleCompiler {
 public:
  // Starts `compile_threads` compile threads (at least 1) and the upload thread; fails when a
  // compile thread cannot create its isolate.
  static Result<std::unique_ptr<ModuleCompiler>> start(size_t compile_threads = 1);
  ~ModuleCompiler();
  ModuleCompiler(const ModuleCompiler&) = delete;
  ModuleCompiler& operator=(const ModuleCompiler&) = delete;

  // Compiles `binary` as module `id` with `settings` on a compile thread (Sandbox::load) and
  // returns the module, which any sandbox may run. `binary` must stay valid until it returns.
  Result<std::shared_ptr<const wasm::Module>> compile(const std::string& id,
                                                      std::span<const uint8_t> binary,
                                                      const wasm::InstanceSettings& settings);

  // Runs `job` on the first free compile thread, with that thread's sandbox (compile() is one
  // such job). Returns at once.
  void submit_compile(std::function<void(wasm::Sandbox&)> job);

  // Runs `job` on the upload thread, after the uploads queued before it, unless `max_waiting`
  // uploads wait already: then returns false and drops `job` (each waiting upload holds its
  // module, up to 50 MiB, in memory).
  bool submit_upload(std::function<void()> job, size_t max_waiting);

  // Upload jobs waiting for the upload thread (not counting the one it runs).
  size_t uploads_queued() const;

 private:
  // One thread and its queue.
  struct Lane {
    mutable Mutex mutex;
    CondVar wake;
    std::deque<std::function<void()>> jobs GUARDED_BY(mutex);
    bool stopping GUARDED_BY(mutex) = false;
    std::vector<std::thread> threads;
    void push(std::function<void()> job);
    void run();
    void stop();  // runs the queued jobs, then joins every thread
  };

  ModuleCompiler() = default;

  Lane compile_lane_;
  Lane upload_lane_;
};

}  // namespace wasmq::etl
