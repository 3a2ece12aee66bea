#include "wasm/binary.h"

#include <cstring>

namespace wasmq::wasm {
namespace {

constexpr uint8_t kI32 = 0x7F;
constexpr uint8_t kI64 = 0x7E;

const char* value_type_name(uint8_t t) {
  switch (t) {
    case 0x7F: return "i32";
    case 0x7E: return "i64";
    case 0x7D: return "f32";
    case 0x7C: return "f64";
    case 0x7B: return "v128";
    case 0x70: return "funcref";
    case 0x6F: return "externref";
  }
  return "?";
}

FunctionType sig(std::vector<uint8_t> params, std::vector<uint8_t> results) {
  return {std::move(params), std::move(results)};
}

// A bounded cursor over the binary; the first error sticks.
class Cursor {
 public:
  Cursor(const uint8_t* p, const uint8_t* end) : begin_(p), p_(p), end_(end) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool at_end() const { return p_ >= end_; }
  const uint8_t* position() const { return p_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  void fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at byte " + std::to_string(p_ - begin_);
  }
  uint8_t byte() {
    if (!ok()) return 0;
    if (p_ >= end_) {
      fail("unexpected end of section");
      return 0;
    }
    return *p_++;
  }
  uint64_t leb_u(int max_bits) {
    uint64_t result = 0;
    int shift = 0;
    while (ok()) {
      uint8_t b = byte();
      if (shift >= max_bits || (shift + 7 > max_bits && (b & 0x7F) >> (max_bits - shift))) {
        fail("malformed LEB128 integer");
        return 0;
      }
      result |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return result;
      shift += 7;
    }
    return 0;
  }
  uint32_t u32() { return static_cast<uint32_t>(leb_u(32)); }
  std::string name() {
    uint32_t n = u32();
    if (!ok()) return {};
    if (n > remaining()) {
      fail("name length " + std::to_string(n) + " past the end of the section");
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  void skip(size_t n) {
    if (n > remaining()) {
      fail("truncated section");
      return;
    }
    p_ += n;
  }

 private:
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  std::string error_;
};

struct Limits {
  uint8_t flags = 0;
  uint64_t initial = 0;
  std::optional<uint64_t> max;
};

Limits read_limits(Cursor& c) {
  Limits l;
  l.flags = c.byte();
  if (l.flags > 7) c.fail("invalid limits flags " + std::to_string(l.flags));
  bool is64 = l.flags & 4;
  l.initial = c.leb_u(is64 ? 64 : 32);
  if (l.flags & 1) l.max = c.leb_u(is64 ? 64 : 32);
  return l;
}

struct Section {
  uint8_t id;
  const uint8_t* begin;  // start of the section header (id byte)
  const uint8_t* payload;
  const uint8_t* end;
};

// Splits the binary into sections after checking magic and version.
Result<std::vector<Section>> split_sections(std::span<const uint8_t> binary) {
  static constexpr uint8_t kMagic[] = {0x00, 0x61, 0x73, 0x6D};
  static constexpr uint8_t kVersion[] = {0x01, 0x00, 0x00, 0x00};
  if (binary.size() < 8 || std::memcmp(binary.data(), kMagic, 4) != 0) {
    return Status(StatusCode::kInvalidModule, "not a WebAssembly module: bad magic number");
  }
  if (std::memcmp(binary.data() + 4, kVersion, 4) != 0) {
    return Status(StatusCode::kInvalidModule, "unsupported WebAssembly version (only 1 is supported)");
  }
  std::vector<Section> sections;
  Cursor c(binary.data() + 8, binary.data() + binary.size());
  while (!c.at_end() && c.ok()) {
    Section s;
    s.begin = c.position();
    s.id = c.byte();
    uint32_t size = c.u32();
    if (!c.ok()) break;
    if (size > c.remaining()) {
      c.fail("section " + std::to_string(s.id) + " size " + std::to_string(size) +
             " past the end of the binary");
      break;
    }
    s.payload = c.position();
    s.end = s.payload + size;
    c.skip(size);
    sections.push_back(s);
  }
  if (!c.ok()) return Status(StatusCode::kInvalidModule, "malformed module: " + c.error());
  return sections;
}

void add_problem(std::string& problems, const std::string& p) {
  if (!problems.empty()) problems += "; ";
  problems += p;
}

}  // namespace

std::string FunctionType::to_string() const {
  auto list = [](const std::vector<uint8_t>& types) {
    std::string s;
    for (size_t i = 0; i < types.size(); ++i) {
      if (i) s += ", ";
      s += value_type_name(types[i]);
    }
    return s;
  };
  std::string r = "(" + list(params) + ") -> ";
  if (results.empty()) return r + "()";
  return results.size() == 1 ? r + list(results) : r + "(" + list(results) + ")";
}

const Export* ModuleInfo::find_export(std::string_view name) const {
  for (const auto& e : exports) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

const std::vector<WasiFunction>& supported_wasi_functions() {
  static const std::vector<WasiFunction> functions = {
      {"args_get", sig({kI32, kI32}, {kI32})},
      {"args_sizes_get", sig({kI32, kI32}, {kI32})},
      {"environ_get", sig({kI32, kI32}, {kI32})},
      {"environ_sizes_get", sig({kI32, kI32}, {kI32})},
      {"clock_res_get", sig({kI32, kI32}, {kI32})},
      {"clock_time_get", sig({kI32, kI64, kI32}, {kI32})},
      {"random_get", sig({kI32, kI32}, {kI32})},
      {"fd_write", sig({kI32, kI32, kI32, kI32}, {kI32})},
      {"fd_read", sig({kI32, kI32, kI32, kI32}, {kI32})},
      {"fd_close", sig({kI32}, {kI32})},
      {"fd_seek", sig({kI32, kI64, kI32, kI32}, {kI32})},
      {"fd_fdstat_get", sig({kI32, kI32}, {kI32})},
      {"fd_fdstat_set_flags", sig({kI32, kI32}, {kI32})},
      {"fd_prestat_get", sig({kI32, kI32}, {kI32})},
      {"fd_prestat_dir_name", sig({kI32, kI32, kI32}, {kI32})},
      {"path_open", sig({kI32, kI32, kI32, kI32, kI32, kI64, kI64, kI32, kI32}, {kI32})},
      {"proc_exit", sig({kI32}, {})},
      {"sched_yield", sig({}, {kI32})},
  };
  return functions;
}

Result<ModuleInfo> inspect_module(std::span<const uint8_t> binary) {
  auto sections = split_sections(binary);
  if (!sections.is_ok()) return sections.status();

  ModuleInfo info;
  std::vector<FunctionType> types;
  std::vector<uint32_t> function_types;  // type index per function, imports first
  std::string problems;
  int memories = 0;
  uint8_t last_id = 0;
  uint32_t code_bodies = 0;

  for (const Section& s : *sections) {
    Cursor c(s.payload, s.end);
    if (s.id != 0) {
      // Non-custom sections appear at most once, in order (datacount 12 sits before code 10).
      auto rank = [](uint8_t id) { return id == 12 ? 9.5 : static_cast<double>(id); };
      if (last_id != 0 && rank(s.id) <= rank(last_id)) {
        return Status(StatusCode::kInvalidModule,
                      "malformed module: section " + std::to_string(s.id) + " out of order");
      }
      last_id = s.id;
    }
    switch (s.id) {
      case 1: {  // types
        uint32_t n = c.u32();
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          if (c.byte() != 0x60) {
            c.fail("unsupported type form");
            break;
          }
          FunctionType t;
          uint32_t np = c.u32();
          if (np > c.remaining()) c.fail("too many parameters");
          for (uint32_t j = 0; j < np && c.ok(); ++j) t.params.push_back(c.byte());
          uint32_t nr = c.u32();
          if (nr > c.remaining()) c.fail("too many results");
          for (uint32_t j = 0; j < nr && c.ok(); ++j) t.results.push_back(c.byte());
          types.push_back(std::move(t));
        }
        break;
      }
      case 2: {  // imports
        uint32_t n = c.u32();
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          Import imp;
          imp.module = c.name();
          imp.name = c.name();
          uint8_t kind = c.byte();
          imp.kind = static_cast<ExternKind>(kind);
          switch (kind) {
            case 0: {
              uint32_t ti = c.u32();
              if (c.ok() && ti >= types.size()) c.fail("import type index out of range");
              if (c.ok()) imp.type = types[ti];
              function_types.push_back(ti);
              break;
            }
            case 1: c.byte(); read_limits(c); break;
            case 2: read_limits(c); ++memories; break;
            case 3: c.byte(); c.byte(); break;
            case 4: c.byte(); c.u32(); break;
            default: c.fail("invalid import kind " + std::to_string(kind));
          }
          if (c.ok()) info.imports.push_back(std::move(imp));
        }
        break;
      }
      case 3: {  // functions
        uint32_t n = c.u32();
        if (n > c.remaining()) c.fail("function count past the end of the section");
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          uint32_t ti = c.u32();
          if (c.ok() && ti >= types.size()) c.fail("function type index out of range");
          function_types.push_back(ti);
        }
        break;
      }
      case 5: {  // memories
        uint32_t n = c.u32();
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          Limits l = read_limits(c);
          ++memories;
          if (l.flags & 2) add_problem(problems, "shared memory is not supported");
          if (l.flags & 4) add_problem(problems, "64-bit memory is not supported");
          info.memory_initial_pages = l.initial;
          info.memory_max_pages = l.max;
        }
        break;
      }
      case 7: {  // exports
        uint32_t n = c.u32();
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          Export e;
          e.name = c.name();
          uint8_t kind = c.byte();
          uint32_t index = c.u32();
          e.kind = static_cast<ExternKind>(kind);
          if (c.ok() && kind == 0) {
            if (index >= function_types.size()) {
              c.fail("export " + e.name + " refers to a missing function");
            } else {
              e.type = types[function_types[index]];
            }
          }
          if (c.ok()) info.exports.push_back(std::move(e));
        }
        break;
      }
      case 8:
        info.has_start = true;
        break;
      case 10:
        code_bodies = c.u32();
        break;
      default:
        break;
    }
    if (!c.ok()) {
      return Status(StatusCode::kInvalidModule,
                    "malformed module: section " + std::to_string(s.id) + ": " + c.error());
    }
  }

  size_t imported_functions = 0;
  for (const Import& imp : info.imports) imported_functions += imp.kind == ExternKind::kFunction;
  if (function_types.size() - imported_functions != code_bodies) {
    return Status(StatusCode::kInvalidModule,
                  "malformed module: " + std::to_string(function_types.size() - imported_functions) +
                      " functions declared but " + std::to_string(code_bodies) + " bodies present");
  }

  // Imports: only the WASI subset, with its exact signatures.
  for (const Import& imp : info.imports) {
    std::string qualified = imp.module + "." + imp.name;
    if (imp.module != kWasiModule || imp.kind != ExternKind::kFunction) {
      add_problem(problems, "unsupported import " + qualified);
      continue;
    }
    const WasiFunction* known = nullptr;
    for (const auto& f : supported_wasi_functions()) {
      if (imp.name == f.name) known = &f;
    }
    if (!known) {
      add_problem(problems, "unsupported import " + qualified);
    } else if (*imp.type != known->type) {
      add_problem(problems, "import " + qualified + " has signature " + imp.type->to_string() +
                                ", expected " + known->type.to_string());
    }
  }

  // Memory: exactly one, defined by the module and exported as "memory".
  if (memories > 1) add_problem(problems, "more than one memory is not supported");
  const Export* memory = info.find_export("memory");
  if (!memory) {
    add_problem(problems, "missing export memory");
  } else if (memory->kind != ExternKind::kMemory) {
    add_problem(problems, "export memory is not a memory");
  }

  struct Expected {
    const char* name;
    FunctionType type;
    bool required;
    bool* present;
  };
  bool ignored = false;
  const Expected expected[] = {
      {"alloc", sig({kI32}, {kI32}), true, &ignored},
      {"dealloc", sig({kI32, kI32}, {}), true, &ignored},
      {"process_message", sig({kI32, kI32}, {kI32}), true, &ignored},
      {"process_batch", sig({kI32, kI32}, {kI32}), false, &info.has_process_batch},
      {"init_module", sig({kI32, kI32}, {kI32}), false, &info.has_init_module},
      {"_initialize", sig({}, {}), false, &info.has_initialize},
  };
  for (const auto& e : expected) {
    const Export* found = info.find_export(e.name);
    if (!found) {
      if (e.required) add_problem(problems, std::string("missing export ") + e.name);
      continue;
    }
    if (found->kind != ExternKind::kFunction) {
      add_problem(problems, std::string("export ") + e.name + " is not a function");
    } else if (*found->type != e.type) {
      add_problem(problems, std::string("export ") + e.name + " has signature " +
                                found->type->to_string() + ", expected " + e.type.to_string());
    } else {
      *e.present = true;
    }
  }

  if (!problems.empty()) return Status(StatusCode::kInvalidModule, problems);
  return info;
}

namespace {
void put_leb(std::vector<uint8_t>& out, uint64_t v) {
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v) b |= 0x80;
    out.push_back(b);
  } while (v);
}
}  // namespace

Result<std::vector<uint8_t>> limit_memory(std::span<const uint8_t> binary, uint64_t limit_bytes) {
  auto sections = split_sections(binary);
  if (!sections.is_ok()) return sections.status();
  const uint64_t limit_pages = limit_bytes / kWasmPageSize;

  std::vector<uint8_t> out(binary.begin(), binary.begin() + 8);
  out.reserve(binary.size() + 16);
  for (const Section& s : *sections) {
    if (s.id != 5) {
      out.insert(out.end(), s.begin, s.end);
      continue;
    }
    Cursor c(s.payload, s.end);
    uint32_t n = c.u32();
    std::vector<uint8_t> payload;
    put_leb(payload, n);
    for (uint32_t i = 0; i < n && c.ok(); ++i) {
      Limits l = read_limits(c);
      if (l.initial > limit_pages) {
        return Status(StatusCode::kLimitExceeded,
                      "initial memory of " + std::to_string(l.initial * kWasmPageSize) +
                          " bytes exceeds the memory limit of " + std::to_string(limit_bytes) +
                          " bytes");
      }
      uint64_t max = l.max ? std::min(*l.max, limit_pages) : limit_pages;
      payload.push_back(static_cast<uint8_t>((l.flags & ~1u) | 1u));
      put_leb(payload, l.initial);
      put_leb(payload, max);
    }
    if (!c.ok() || !c.at_end()) {
      return Status(StatusCode::kInvalidModule, "malformed module: memory section: " + c.error());
    }
    out.push_back(5);
    put_leb(out, payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
  }
  return out;
}

}  // namespace wasmq::wasm
