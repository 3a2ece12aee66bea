// Uploaded modules and their metadata, on disk under `etl.modules_path`:
//   <id>.wasm  the binary as uploaded
//   <id>.json  {name, version, sha256, size_bytes, uploaded_at_ms, exports, imports, memory}
// Ids are "<name>-v<version>": a name never contains "-v" followed by a digit, so an id splits
// into its name and version in one way only. A module reference in a pipeline is either a full
// id (pinned) or a bare name, which follows the newest version of that name (semver order).
// Versions of one name signed with a trusted key (etl.enable_module_signature_verification)
// are all signed with the same key: a bare name never follows code another key signed.
//
// Threads: every method may be called from any thread. Records are immutable and shared; a
// record removed while someone holds it stays valid for them.
#pragma once

#include <cstdint>
#include <boost/json/object.hpp>
#include <atomic>
#include <filesystem>
#include <functional>
#include <span>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "etl/semver.h"
#include "wasm/binary.h"

namespace wasmq::etl {

struct ModuleRecord {
  std::string id;  // "<name>-v<version>"
  std::string name;
  SemVer version;
  std::string sha256;  // lower-case hex
  uint64_t size_bytes = 0;
  int64_t uploaded_at_ms = 0;
  wasm::ModuleInfo info;
  std::shared_ptr<const std::vector<uint8_t>> binary;
  // The id of the trusted key whose signature the upload carried (ModuleSigners::key_id);
  // empty for a module uploaded without signature verification.
  std::string signed_by;
};

// The longest version an upload may carry: "<name>-v<version>.wasm.tmp", with a name of 128
// characters, must fit a file name (255 bytes).
inline constexpr size_t kMaxModuleVersionLength = 64;

// Module names of new uploads: 1-128 characters of [A-Za-z0-9._-], not starting with '.' (the
// files would be hidden, and "." and ".." are no names), and without "-v" followed by a digit
// (the id "<name>-v<version>" would read two ways). kInvalidArgument starting "module name".
Status validate_module_name(std::string_view name);

// The checks add() makes of an upload's name and version, before anything else: kInvalidArgument
// starting "module name" or "version".
Status validate_name_and_version(std::string_view name, std::string_view version);

// The API's metadata of a module (http-api.md, GET /api/v1/etl/modules/{id}): id, name,
// version, size_bytes, sha256, uploaded_at (RFC 3339) and uploaded_at_ms, exports, imports,
// memory (initial and maximum pages), and whether it exports process_batch.
boost::json::object module_to_json(const ModuleRecord& record);

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::span<const uint8_t> data);

class ModuleRegistry {
 public:
  // Opens (creating) `dir` and loads every module in it. A module whose files are damaged (a
  // missing binary, a checksum mismatch, metadata that does not parse) is skipped with a line
  // in `warnings`; it does not stop the broker.
  static Result<std::unique_ptr<ModuleRegistry>> open(const std::filesystem::path& dir,
                                                      std::vector<std::string>* warnings);

  // Checks `binary` against the ABI (wasm::inspect_module) and stores it as name-v<version>.
  // `verify`, when set, runs before anything is written (the engine's full compilation).
  // `signed_by` is the id of the key that signed the upload (empty: not signed).
  // Errors: kInvalidArgument (name, version; the message starts with "module name" or
  // "version"), kInvalidModule (every problem named), kAlreadyExists (the id exists),
  // kConflict (other versions of the name are signed by another key), kIo.
  Result<std::shared_ptr<const ModuleRecord>> add(
      std::string_view name, std::string_view version, std::vector<uint8_t> binary,
      const std::function<Status(std::span<const uint8_t>)>& verify = {},
      std::string_view signed_by = {});

  // Removes a module by full id; kNotFound when absent.
  Status remove(std::string_view id);

  // The module with this full id, or nullptr.
  std::shared_ptr<const ModuleRecord> find(std::string_view id) const;

  // A pipeline's module reference: the full id when such a module exists, otherwise the newest
  // version of the bare name; nullptr when neither exists.
  std::shared_ptr<const ModuleRecord> resolve(std::string_view reference) const;

  // Every module, by id.
  std::vector<std::shared_ptr<const ModuleRecord>> list() const;

  const std::filesystem::path& dir() const { return dir_; }

  // Changes whenever a module is added or removed (plans derived from the registry compare it).
  // Lock-free: the ETL workers read it per call.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  explicit ModuleRegistry(std::filesystem::path dir) : dir_(std::move(dir)) {}

  const std::filesystem::path dir_;
  mutable Mutex mutex_;
  std::map<std::string, std::shared_ptr<const ModuleRecord>, std::less<>> modules_
      GUARDED_BY(mutex_);
  std::atomic<uint64_t> generation_{1};  // changed under mutex_; read without it
};

}  // namespace wasmq::etl
