#include "etl/compiler.h"

#include <algorithm>
#include <future>

#include "common/log.h"

namespace wasmq::etl {

void ModuleCompiler::Lane::push(std::function<void()> job) {
  {
    MutexLock lock(mutex);
    jobs.push_back(std::move(job));
  }
  wake.notify_one();
}

void ModuleCompiler::Lane::run() {
  while (true) {
    std::function<void()> job;
    {
      MutexLock lock(mutex);
      while (!stopping && jobs.empty()) wake.wait(mutex);
      if (jobs.empty()) return;  // stopping, and every job has run
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      // Jobs report failures as values; this is a bug or memory exhaustion. The thread goes on.
      log::get("etl").error("module compiler job failed: {}", e.what());
    }
  }
}

void ModuleCompiler::Lane::stop() {
  {
    MutexLock lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (auto& thread : threads) {
    if (thread.joinable()) thread.join();
  }
}

namespace {
// The sandbox of the compile thread running now (each compile thread has its own).
thread_local wasm::Sandbox* compile_thread_sandbox = nullptr;
}  // namespace

Result<std::unique_ptr<ModuleCompiler>> ModuleCompiler::start(size_t compile_threads) {
  std::unique_ptr<ModuleCompiler> compiler(new ModuleCompiler());
  ModuleCompiler* self = compiler.get();
  for (size_t i = 0; i < std::max<size_t>(compile_threads, 1); ++i) {
    std::promise<Status> started;
    auto ready = started.get_future();
    // glibc's default stack (8 MiB), as the workers: V8 needs more than its own stack limit.
    self->compile_lane_.threads.emplace_back([self, &started] {
      auto sandbox = wasm::Sandbox::create();
      if (!sandbox.is_ok()) {
        started.set_value(sandbox.status());
        return;
      }
      compile_thread_sandbox = sandbox->get();
      started.set_value(Status::ok());
      self->compile_lane_.run();
      compile_thread_sandbox = nullptr;
      sandbox->reset();  // on the thread that created it
    });
    if (Status s = ready.get(); !s.is_ok()) {
      compiler->compile_lane_.stop();
      return s.with_context("cannot start a module compile thread");
    }
  }
  compiler->upload_lane_.threads.emplace_back([self] { self->upload_lane_.run(); });
  return compiler;
}

ModuleCompiler::~ModuleCompiler() {
  upload_lane_.stop();  // uploads may still compile: before the compile thread stops
  compile_lane_.stop();
}

Result<std::shared_ptr<const wasm::Module>> ModuleCompiler::compile(
    const std::string& id, std::span<const uint8_t> binary,
    const wasm::InstanceSettings& settings) {
  std::promise<Result<std::shared_ptr<const wasm::Module>>> compiled;
  auto result = compiled.get_future();
  submit_compile([&id, binary, &settings, &compiled](wasm::Sandbox& sandbox) {
    auto module = sandbox.load(id, binary, settings);
    if (module.is_ok()) {
      // The module object this isolate made (and, through it, the compiled code) goes now: the
      // caller's Module holds the code; every sandbox that runs it makes its own object.
      sandbox.forget(**module);
    }
    sandbox.collect_garbage();
    compiled.set_value(std::move(module));
  });
  return result.get();
}

void ModuleCompiler::submit_compile(std::function<void(wasm::Sandbox&)> job) {
  compile_lane_.push([job = std::move(job)] { job(*compile_thread_sandbox); });
}

bool ModuleCompiler::submit_upload(std::function<void()> job, size_t max_waiting) {
  {
    MutexLock lock(upload_lane_.mutex);
    if (upload_lane_.jobs.size() >= max_waiting) return false;
    upload_lane_.jobs.push_back(std::move(job));
  }
  upload_lane_.wake.notify_one();
  return true;
}

size_t ModuleCompiler::uploads_queued() const {
  MutexLock lock(upload_lane_.mutex);
  return upload_lane_.jobs.size();
}

}  // namespace wasmq::etl
