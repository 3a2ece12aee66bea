#include "etl/module_registry.h"

#include <openssl/evp.h>

#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "common/file.h"
#include "common/log.h"
#include "common/message_json.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr uint64_t kMaxModuleBytes = 50ull << 20;


json::array exports_json(const wasm::ModuleInfo& info) {
  json::array a;
  for (const auto& e : info.exports) {
    json::object o{{"name", e.name}};
    if (e.type) o["signature"] = e.type->to_string();
    o["kind"] = e.kind == wasm::ExternKind::kFunction ? "function"
                : e.kind == wasm::ExternKind::kMemory ? "memory"
                : e.kind == wasm::ExternKind::kTable  ? "table"
                : e.kind == wasm::ExternKind::kGlobal ? "global"
                                                      : "tag";
    a.push_back(std::move(o));
  }
  return a;
}

json::array imports_json(const wasm::ModuleInfo& info) {
  json::array a;
  for (const auto& i : info.imports) {
    json::object o{{"module", i.module}, {"name", i.name}};
    if (i.type) o["signature"] = i.type->to_string();
    a.push_back(std::move(o));
  }
  return a;
}

// The <id>.json file: the API's metadata plus "id". At open only id, name, version, sha256 and
// uploaded_at_ms are read back; the rest is derived from the binary again.
std::string metadata_text(const ModuleRecord& r) {
  json::object o = module_to_json(r);
  o["id"] = r.id;
  return json::serialize(o);
}

Status validate_name_characters(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return invalid_argument("module name must be 1 to 128 characters long");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return invalid_argument("module name \"" + std::string(name) +
                              "\" may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::ok();
}

// Loads one module from its metadata file; the reason when it cannot.
Result<std::shared_ptr<const ModuleRecord>> load_record(const fs::path& meta_path) {
  auto text = read_file(meta_path, 1 << 20);
  if (!text.is_ok()) return text.status();
  boost::system::error_code ec;
  json::value v = json::parse(*text, ec);
  if (ec || !v.is_object()) return Status(StatusCode::kIo, "metadata is not a JSON object");
  const json::object& o = v.get_object();
  auto str = [&](const char* k) -> std::string {
    const json::value* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->get_string()) : std::string();
  };
  auto record = std::make_shared<ModuleRecord>();
  record->name = str("name");
  record->sha256 = str("sha256");
  record->signed_by = str("signed_by");
  // Only the characters: a module stored before the stricter rules of new uploads still loads.
  if (Status s = validate_name_characters(record->name); !s.is_ok()) return s;
  auto version = SemVer::parse(str("version"));
  if (!version.is_ok()) return version.status();
  record->version = *version;
  record->id = record->name + "-v" + record->version.to_string();
  if (str("id") != record->id) return Status(StatusCode::kIo, "id does not match name and version");
  // remove() deletes <id>.json: metadata under another name would bring the module back.
  if (meta_path.stem().string() != record->id) {
    return Status(StatusCode::kIo, "the file name does not match the module id " + record->id);
  }
  if (const json::value* t = o.if_contains("uploaded_at_ms"); t && t->is_int64()) {
    record->uploaded_at_ms = t->get_int64();
  }
  auto binary = read_file(meta_path.parent_path() / (record->id + ".wasm"), kMaxModuleBytes);
  if (!binary.is_ok()) return binary.status();
  auto bytes = std::make_shared<std::vector<uint8_t>>(binary->begin(), binary->end());
  if (sha256_hex(*bytes) != record->sha256) {
    return Status(StatusCode::kIo, "the binary's sha256 does not match its metadata");
  }
  auto info = wasm::inspect_module(*bytes);
  if (!info.is_ok()) return info.status();
  record->info = std::move(*info);
  record->size_bytes = bytes->size();
  record->binary = std::move(bytes);
  return std::shared_ptr<const ModuleRecord>(std::move(record));
}

}  // namespace

json::object module_to_json(const ModuleRecord& r) {
  json::object memory{{"initial_pages", r.info.memory_initial_pages},
                      {"initial_bytes", r.info.memory_initial_pages * wasm::kWasmPageSize}};
  if (r.info.memory_max_pages) memory["max_pages"] = *r.info.memory_max_pages;
  json::object o{{"module_id", r.id},
                 {"name", r.name},
                 {"version", r.version.to_string()},
                 {"size_bytes", r.size_bytes},
                 {"sha256", r.sha256},
                 {"uploaded_at", rfc3339_ms(r.uploaded_at_ms)},
                 {"uploaded_at_ms", r.uploaded_at_ms},
                 {"exports", exports_json(r.info)},
                 {"imports", imports_json(r.info)},
                 {"memory", std::move(memory)},
                 {"process_batch", r.info.has_process_batch}};
  if (!r.signed_by.empty()) o["signed_by"] = r.signed_by;
  return o;
}


Status validate_module_name(std::string_view name) {
  if (Status s = validate_name_characters(name); !s.is_ok()) return s;
  if (name[0] == '.') {
    return invalid_argument("module name \"" + std::string(name) + "\" may not start with '.'");
  }
  for (size_t at = name.find("-v"); at != std::string_view::npos; at = name.find("-v", at + 1)) {
    if (at + 2 < name.size() && std::isdigit(static_cast<unsigned char>(name[at + 2]))) {
      return invalid_argument("module name \"" + std::string(name) +
                              "\" may not contain \"-v\" followed by a digit: the id "
                              "\"<name>-v<version>\" would be ambiguous");
    }
  }
  return Status::ok();
}

// Errors carry the field they are about: "name" or "version".
Status validate_name_and_version(std::string_view name, std::string_view version) {
  if (Status s = validate_module_name(name); !s.is_ok()) {
    return Status(s.code(), s.message(), "name");
  }
  if (version.size() > kMaxModuleVersionLength) {
    return Status(StatusCode::kInvalidArgument,
                  "version is " + std::to_string(version.size()) + " characters long; at most " +
                      std::to_string(kMaxModuleVersionLength) + " are allowed",
                  "version");
  }
  auto semver = SemVer::parse(version);
  return semver.is_ok() ? Status::ok() : semver.status();
}

std::string sha256_hex(std::span<const uint8_t> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

Result<std::unique_ptr<ModuleRegistry>> ModuleRegistry::open(const fs::path& dir,
                                                             std::vector<std::string>* warnings) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kIo, "cannot create " + dir.string() + ": " + ec.message());
  std::unique_ptr<ModuleRegistry> registry(new ModuleRegistry(dir));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& path = entry.path();
    if (path.extension() != ".json") continue;
    auto record = load_record(path);
    if (!record.is_ok()) {
      if (warnings) {
        warnings->push_back("module " + path.stem().string() +
                            " not loaded: " + record.status().message());
      }
      continue;
    }
    // No other thread sees the registry yet; the lock costs nothing and keeps the analysis.
    MutexLock lock(registry->mutex_);
    registry->modules_.emplace((*record)->id, *record);
  }
  if (ec) return Status(StatusCode::kIo, "cannot list " + dir.string() + ": " + ec.message());
  return registry;
}

Result<std::shared_ptr<const ModuleRecord>> ModuleRegistry::add(
    std::string_view name, std::string_view version, std::vector<uint8_t> binary,
    const std::function<Status(std::span<const uint8_t>)>& verify, std::string_view signed_by) {
  if (Status s = validate_name_and_version(name, version); !s.is_ok()) return s;
  auto semver = SemVer::parse(version);
  if (!semver.is_ok()) return semver.status();
  if (binary.size() > kMaxModuleBytes) {
    return Status(StatusCode::kLimitExceeded, "a module may be at most 50 MiB");
  }
  auto record = std::make_shared<ModuleRecord>();
  record->name = std::string(name);
  record->version = *semver;
  record->id = record->name + "-v" + semver->to_string();
  if (find(record->id)) {
    return Status(StatusCode::kAlreadyExists, "module " + record->id + " already exists");
  }
  auto info = wasm::inspect_module(binary);
  if (!info.is_ok()) return info.status();
  if (verify) {
    if (Status s = verify(binary); !s.is_ok()) return s;
  }
  record->info = std::move(*info);
  record->sha256 = sha256_hex(binary);
  record->size_bytes = binary.size();
  record->uploaded_at_ms = now_ms();
  record->signed_by = std::string(signed_by);
  record->binary = std::make_shared<const std::vector<uint8_t>>(std::move(binary));

  MutexLock lock(mutex_);
  if (modules_.count(record->id)) {
    return Status(StatusCode::kAlreadyExists, "module " + record->id + " already exists");
  }
  if (!signed_by.empty()) {
    for (const auto& [id, other] : modules_) {
      if (other->name == record->name && !other->signed_by.empty() &&
          other->signed_by != signed_by) {
        return Status(StatusCode::kConflict,
                      "module name \"" + record->name + "\" belongs to signing key " +
                          other->signed_by + " (module " + id + "); this upload is signed by " +
                          std::string(signed_by) +
                          ": a bare name only follows versions of one key (delete the name's "
                          "versions to hand it to another key)");
      }
    }
  }
  // The binary first, then the metadata that makes it visible at the next start.
  const auto* bytes = record->binary.get();
  if (Status s = write_file_atomically(
          dir_ / (record->id + ".wasm"),
          std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
      !s.is_ok()) {
    log::get("etl").error("{}", s.message());
    return without_path(s, "cannot store module " + record->id);
  }
  if (Status s = write_file_atomically(dir_ / (record->id + ".json"), metadata_text(*record));
      !s.is_ok()) {
    std::error_code ec;
    fs::remove(dir_ / (record->id + ".wasm"), ec);
    log::get("etl").error("{}", s.message());
    return without_path(s, "cannot store module " + record->id);
  }
  modules_.emplace(record->id, record);
  ++generation_;
  return std::shared_ptr<const ModuleRecord>(record);
}

Status ModuleRegistry::remove(std::string_view id) {
  MutexLock lock(mutex_);
  auto it = modules_.find(id);
  if (it == modules_.end()) {
    return Status(StatusCode::kNotFound, "module " + std::string(id) + " does not exist");
  }
  // The metadata first: without it the binary is ignored at the next start.
  std::error_code ec;
  fs::remove(dir_ / (std::string(id) + ".json"), ec);
  if (ec)
    return Status(StatusCode::kIo, "cannot remove module " + std::string(id) + ": " + ec.message());
  fs::remove(dir_ / (std::string(id) + ".wasm"), ec);
  modules_.erase(it);
  ++generation_;
  return Status::ok();
}

std::shared_ptr<const ModuleRecord> ModuleRegistry::find(std::string_view id) const {
  MutexLock lock(mutex_);
  auto it = modules_.find(id);
  return it == modules_.end() ? nullptr : it->second;
}

std::shared_ptr<const ModuleRecord> ModuleRegistry::resolve(std::string_view reference) const {
  MutexLock lock(mutex_);
  if (auto it = modules_.find(reference); it != modules_.end()) return it->second;
  std::shared_ptr<const ModuleRecord> newest;
  for (const auto& [id, record] : modules_) {
    if (record->name == reference && (!newest || record->version.compare(newest->version) > 0)) {
      newest = record;
    }
  }
  return newest;
}

std::vector<std::shared_ptr<const ModuleRecord>> ModuleRegistry::list() const {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<const ModuleRecord>> out;
  for (const auto& [id, record] : modules_) out.push_back(record);
  return out;
}


}  // namespace wasmq::etl
