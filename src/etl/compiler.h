// Module compilation apart from the ETL workers. Two threads of their own:
// - the compile thread, with a V8 isolate of its own, compiles modules for the module cache
//   (ModuleCache::get on a miss). It keeps nothing of what it compiled: the module object its
//   isolate made is forgotten and collected at once, so a module dropped from the cache (or
//   deleted) leaves no compiled code behind in any isolate of this thread.
// - the upload thread runs upload checks one at a time (Orchestrator::upload_module): the
//   bounded compile check in a child process (compile_check.h), then the registry's add. An
//   upload that compiles for long holds this thread only, never a worker or the compile thread.
//
// Threads: compile() and submit_upload() from any thread. compile() blocks its caller until the
// compile thread has compiled the module; a job of submit_upload() runs on the upload thread.
// The destructor runs the queued jobs, then joins both threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "common/status.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

class ModuleCompiler {
 public:
  // Starts both threads; fails when the compile thread cannot create its isolate.
  static Result<std::unique_ptr<ModuleCompiler>> start();
  ~ModuleCompiler();
  ModuleCompiler(const ModuleCompiler&) = delete;
  ModuleCompiler& operator=(const ModuleCompiler&) = delete;

  // Compiles `binary` as module `id` with `settings` on the compile thread (Sandbox::load) and
  // returns the module, which any sandbox may run. `binary` must stay valid until it returns.
  Result<std::shared_ptr<const wasm::Module>> compile(const std::string& id,
                                                      std::span<const uint8_t> binary,
                                                      const wasm::InstanceSettings& settings);

  // Runs `job` on the upload thread, after the uploads queued before it, unless `max_waiting`
  // uploads wait already: then returns false and drops `job` (each waiting upload holds its
  // module, up to 50 MiB, in memory).
  bool submit_upload(std::function<void()> job, size_t max_waiting);

  // Upload jobs waiting for the upload thread (not counting the one it runs).
  size_t uploads_queued() const;

 private:
  // One thread and its queue.
  struct Lane {
    mutable std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::function<void()>> jobs;  // guarded by mutex
    bool stopping = false;                   // guarded by mutex
    std::thread thread;
    void push(std::function<void()> job);
    void run();
    void stop();
  };

  ModuleCompiler() = default;

  Lane compile_lane_;
  Lane upload_lane_;
  std::unique_ptr<wasm::Sandbox> sandbox_;  // the compile thread's only
};

}  // namespace wasmq::etl
