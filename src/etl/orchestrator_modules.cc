// Orchestrator, the module side: uploads (queued for their compile check), deletion, and which
// pipelines use a module.
#include "etl/orchestrator.h"

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace wasmq::etl {
namespace {

// The largest memory limit a pipeline may set: uploads are compiled with it, so that a module
// is refused only for what no pipeline could allow.
constexpr uint64_t kMaxMemoryLimitBytes = 4ull << 30;

}  // namespace

void Orchestrator::refresh_in_use_locked() {
  std::set<std::string, std::less<>> in_use;
  if (options_.enabled) {
    for (const auto& [id, compiled] : compiled_) {
      if (!compiled->spec.enabled) continue;
      for (const auto& stage : compiled->spec.stages) {
        for (const auto& module : stage.modules) {
          if (auto record = registry_->resolve(module.module_id)) in_use.insert(record->id);
        }
      }
    }
  }
  runtime_.modules.set_in_use(std::move(in_use));
}

void Orchestrator::upload_module(std::string name, std::string version, std::vector<uint8_t> binary,
                                 std::string signed_by, ModuleDone done) {
  // Before queueing: a bad name or version takes no place in the queue (nor in the log).
  if (Status s = validate_name_and_version(name, version); !s.is_ok()) {
    done(s);
    return;
  }
  auto refuse = std::make_shared<ModuleDone>(std::move(done));
  const std::string id = name + "-v" + version;
  bool queued = compiler_->submit_upload(
      [this, name = std::move(name), version = std::move(version), binary = std::move(binary),
       signed_by = std::move(signed_by), refuse]() mutable {
        ModuleDone done = std::move(*refuse);
        // Compiled with the largest memory limit a pipeline may set, so that a module is refused
        // only for what no pipeline could allow.
        auto verify = [&](std::span<const uint8_t> bytes) -> Status {
          if (!options_.compile_bounds.executable.empty()) {
            log::get("etl").info("module {}-v{}: compile check started ({} bytes)", name, version,
                                 bytes.size());
            return check_compiles(bytes, kMaxMemoryLimitBytes, options_.compile_bounds);
          }
          wasm::InstanceSettings settings;
          settings.memory_limit_bytes = kMaxMemoryLimitBytes;
          auto module = compiler_->compile(name, bytes, settings);
          return module.is_ok() ? Status::ok() : module.status();
        };
        auto added = registry_->add(name, version, std::move(binary), verify, signed_by);
        if (added.is_ok()) {
          log::get("etl").info("module {} uploaded ({} bytes, sha256 {})", (*added)->id,
                               (*added)->size_bytes, (*added)->sha256);
          // A bare name may follow the new version now.
          MutexLock lock(mutex_);
          refresh_in_use_locked();
        } else if (added.status().code() == StatusCode::kInvalidModule ||
                   added.status().code() == StatusCode::kLimitExceeded) {
          log::get("etl").warn("module {}-v{} refused: {}", name, version,
                               added.status().message());
        }
        done(std::move(added));
      },
      kMaxWaitingUploads);
  if (queued) {
    log::get("etl").info("module {}: upload queued for its compile check", id);
  } else {
    (*refuse)(Status(StatusCode::kUnavailable,
                     "too many uploads in progress: " + std::to_string(kMaxWaitingUploads) +
                         " wait for their compile check already; try again later"));
  }
}

Status Orchestrator::delete_module(std::string_view id) {
  MutexLock lock(mutex_);
  // A bare name names no one version: say which there are rather than "does not exist".
  if (auto newest = registry_->resolve(id); newest && newest->id != id) {
    std::string versions;
    for (const auto& record : registry_->list()) {
      if (record->name == id) versions += (versions.empty() ? "" : ", ") + record->id;
    }
    return Status(StatusCode::kInvalidArgument,
                  "module " + std::string(id) +
                      ": delete one version by its full id (name-vX.Y.Z); its versions: " +
                      versions);
  }
  std::vector<std::string> pinning;
  for (const auto& [pid, entry] : entries_) {
    if (!entry.spec.enabled) continue;
    for (const auto& stage : entry.spec.stages) {
      for (const auto& module : stage.modules) {
        if (module.module_id == id) pinning.push_back(pid);
      }
    }
  }
  if (!pinning.empty()) {
    std::string list;
    for (const auto& p : pinning) list += (list.empty() ? "" : ", ") + p;
    return Status(StatusCode::kConflict,
                  "module " + std::string(id) + " is pinned by enabled pipeline(s): " + list);
  }
  Status s = registry_->remove(id);
  if (s.is_ok()) {
    refresh_in_use_locked();
    runtime_.modules.prune(*registry_);
    pools_->forget(std::string(id));
    // After the forget on each worker (its queue is in order): the module objects just
    // forgotten hold the compiled code until their isolate collects them, and an idle isolate
    // may not collect for a long time.
    workers_->broadcast([](size_t, wasm::Sandbox& sandbox, Executor& executor) {
      executor.forget_bound();  // what the workers bound may hold the module
      sandbox.collect_garbage();
    });
    log::get("etl").info("module {} deleted", id);
  }
  return s;
}

std::vector<std::string> Orchestrator::used_by(const ModuleRecord& record) const {
  MutexLock lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [pid, entry] : entries_) {
    bool uses = false;
    for (const auto& stage : entry.spec.stages) {
      for (const auto& module : stage.modules) {
        auto resolved = registry_->resolve(module.module_id);
        if (module.module_id == record.id || (resolved && resolved->id == record.id)) uses = true;
      }
    }
    if (uses) out.push_back(pid);
  }
  return out;
}

}  // namespace wasmq::etl
