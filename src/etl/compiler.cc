#include "etl/compiler.h"

#include <future>

#include "common/log.h"

namespace wasmq::etl {

void ModuleCompiler::Lane::push(std::function<void()> job) {
  {
    std::lock_guard lock(mutex);
    jobs.push_back(std::move(job));
  }
  wake.notify_one();
}

void ModuleCompiler::Lane::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex);
      wake.wait(lock, [&] { return stopping || !jobs.empty(); });
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
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  if (thread.joinable()) thread.join();
}

Result<std::unique_ptr<ModuleCompiler>> ModuleCompiler::start() {
  std::unique_ptr<ModuleCompiler> compiler(new ModuleCompiler());
  std::promise<Status> started;
  auto ready = started.get_future();
  ModuleCompiler* self = compiler.get();
  // glibc's default stack (8 MiB), as the workers: V8 needs more than its own stack limit.
  compiler->compile_lane_.thread = std::thread([self, &started] {
    auto sandbox = wasm::Sandbox::create();
    if (!sandbox.is_ok()) {
      started.set_value(sandbox.status());
      return;
    }
    self->sandbox_ = std::move(*sandbox);
    started.set_value(Status::ok());
    self->compile_lane_.run();
    self->sandbox_.reset();  // on the thread that created it
  });
  if (Status s = ready.get(); !s.is_ok()) {
    compiler->compile_lane_.thread.join();
    return s.with_context("cannot start the module compile thread");
  }
  compiler->upload_lane_.thread = std::thread([self] { self->upload_lane_.run(); });
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
  compile_lane_.push([this, &id, binary, &settings, &compiled] {
    auto module = sandbox_->load(id, binary, settings);
    if (module.is_ok()) {
      // The module object this isolate made (and, through it, the compiled code) goes now: the
      // caller's Module holds the code; every sandbox that runs it makes its own object.
      sandbox_->forget(**module);
    }
    sandbox_->collect_garbage();
    compiled.set_value(std::move(module));
  });
  return result.get();
}

bool ModuleCompiler::submit_upload(std::function<void()> job, size_t max_waiting) {
  {
    std::lock_guard lock(upload_lane_.mutex);
    if (upload_lane_.jobs.size() >= max_waiting) return false;
    upload_lane_.jobs.push_back(std::move(job));
  }
  upload_lane_.wake.notify_one();
  return true;
}

size_t ModuleCompiler::uploads_queued() const {
  std::lock_guard lock(upload_lane_.mutex);
  return upload_lane_.jobs.size();
}

}  // namespace wasmq::etl
