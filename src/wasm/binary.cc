#include "wasm/binary.h"

#include <algorithm>
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

// Skips a constant expression (global initializers, segment offsets, element expressions) up
// to and including its `end`: the instructions of the MVP, reference types and bulk memory.
void skip_const_expr(Cursor& c) {
  while (c.ok()) {
    uint8_t op = c.byte();
    switch (op) {
      case 0x0B:  // end
        return;
      case 0x41:  // i32.const (signed LEB, up to 5 bytes)
        c.leb_u(35);
        break;
      case 0x42:  // i64.const (signed LEB, up to 10 bytes)
        c.leb_u(70);
        break;
      case 0x43:  // f32.const
        c.skip(4);
        break;
      case 0x44:  // f64.const
        c.skip(8);
        break;
      case 0x23:  // global.get
      case 0xD2:  // ref.func
        c.u32();
        break;
      case 0xD0:  // ref.null t
        c.byte();
        break;
      default:
        c.fail("unsupported constant expression opcode " + std::to_string(op));
    }
  }
}

// A section's position in the order the binary format requires (the tag section of the
// exception-handling proposal sits between memory and global, datacount before code); 0 for an
// unknown id.
int section_rank(uint8_t id) {
  static constexpr uint8_t kOrder[] = {1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11};
  for (size_t i = 0; i < sizeof kOrder; ++i) {
    if (kOrder[i] == id) return static_cast<int>(i) + 1;
  }
  return 0;
}

// "<what>: N <unit>, more than the bound of M" when n > bound.
void check_bound(std::string& problems, const std::string& what, uint64_t n, uint64_t bound,
                 const char* unit);

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

void check_bound(std::string& problems, const std::string& what, uint64_t n, uint64_t bound,
                 const char* unit) {
  if (n <= bound) return;
  add_problem(problems, what + ": " + std::to_string(n) + " " + unit + ", more than the bound of " +
                            std::to_string(bound));
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

uint64_t ModuleInfo::table_bytes() const {
  uint64_t elements = 0;
  for (const TableInfo& t : tables) {
    elements +=
        std::min(t.max.value_or(ModuleBounds::kTableElements), ModuleBounds::kTableElements);
  }
  return elements * InstanceCost::kTableElementBytes;
}

uint64_t ModuleInfo::instance_bytes() const {
  uint64_t bytes = InstanceCost::kFixedBytes + table_bytes() +
                   functions * InstanceCost::kFunctionBytes + tags * InstanceCost::kTagBytes;
  for (const Export& e : exports) {
    switch (e.kind) {
      case ExternKind::kFunction:
        bytes += InstanceCost::kExportedFunctionBytes;
        break;
      case ExternKind::kGlobal:
        bytes += InstanceCost::kExportedGlobalBytes;
        break;
      default:
        bytes += InstanceCost::kOtherExportBytes;
        break;
    }
  }
  return bytes;
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
  int last_rank = 0;
  uint32_t code_bodies = 0;

  for (const Section& s : *sections) {
    Cursor c(s.payload, s.end);
    if (s.id != 0) {
      // Non-custom sections appear at most once, in order.
      const int rank = section_rank(s.id);
      if (rank == 0) {
        return Status(StatusCode::kInvalidModule,
                      "malformed module: unknown section id " + std::to_string(s.id));
      }
      if (last_rank != 0 && rank <= last_rank) {
        return Status(StatusCode::kInvalidModule,
                      "malformed module: section " + std::to_string(s.id) + " out of order");
      }
      last_rank = rank;
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
        if (n > ModuleBounds::kFunctions) {
          // Not read further: exports and bodies would refer to functions not read.
          std::string bound;
          check_bound(bound, "functions", n, ModuleBounds::kFunctions, "functions");
          return Status(StatusCode::kInvalidModule, bound);
        }
        if (n > c.remaining()) c.fail("function count past the end of the section");
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          uint32_t ti = c.u32();
          if (c.ok() && ti >= types.size()) c.fail("function type index out of range");
          function_types.push_back(ti);
        }
        break;
      }
      case 4: {  // tables
        uint32_t n = c.u32();
        if (n > ModuleBounds::kTables) {
          check_bound(problems, "tables", n, ModuleBounds::kTables, "tables");
          break;
        }
        uint64_t initial = 0;
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          TableInfo t;
          t.element_type = c.byte();
          if (c.ok() && t.element_type != 0x70 && t.element_type != 0x6F) {
            c.fail("unsupported table element type " + std::to_string(t.element_type));
          }
          Limits l = read_limits(c);
          if (l.flags > 1) c.fail("invalid table limits flags " + std::to_string(l.flags));
          t.initial = l.initial;
          t.max = l.max;
          initial += t.initial;
          if (c.ok()) info.tables.push_back(t);
        }
        // limit_memory() rewrites this section from what is read here: nothing may follow.
        if (c.ok() && !c.at_end()) {
          c.fail(std::to_string(c.remaining()) + " bytes after the declared tables");
        }
        if (c.ok()) {
          check_bound(problems, "tables", initial, ModuleBounds::kTableElements,
                      "elements at their initial size");
        }
        break;
      }
      case 6: {  // globals: each lives on the JavaScript heap of every instance
        uint32_t n = c.u32();
        check_bound(problems, "globals", n, ModuleBounds::kGlobals, "globals");
        break;
      }
      case 9: {  // element segments
        uint32_t n = c.u32();
        if (n > ModuleBounds::kElementSegments) {
          check_bound(problems, "element segments", n, ModuleBounds::kElementSegments, "segments");
          break;
        }
        uint64_t entries = 0;
        for (uint32_t i = 0; i < n && c.ok(); ++i) {
          uint32_t flags = c.u32();
          if (flags > 7) {
            c.fail("invalid element segment flags " + std::to_string(flags));
            break;
          }
          const bool passive_or_declared = flags & 1;
          const bool explicit_table = flags & 2;
          const bool expressions = flags & 4;
          if (!passive_or_declared) {
            if (explicit_table) c.u32();
            skip_const_expr(c);
          }
          if (passive_or_declared || explicit_table) c.byte();  // element kind or reference type
          uint32_t count = c.u32();
          entries += count;
          if (entries > ModuleBounds::kElementSegmentEntries) break;
          for (uint32_t j = 0; j < count && c.ok(); ++j) {
            if (expressions) {
              skip_const_expr(c);
            } else {
              c.u32();
            }
          }
        }
        check_bound(problems, "element segments", entries, ModuleBounds::kElementSegmentEntries,
                    "entries");
        break;
      }
      case 11: {  // data segments (a datacount section, if any, must agree: V8 checks)
        uint32_t n = c.u32();
        check_bound(problems, "data segments", n, ModuleBounds::kDataSegments, "segments");
        break;
      }
      case 13: {  // tags (exception handling)
        info.has_tags = true;
        uint32_t n = c.u32();
        info.tags = n;
        check_bound(problems, "tags", n, ModuleBounds::kTags, "tags");
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
        // limit_memory() rewrites this section from what is read here: nothing may follow.
        if (c.ok() && !c.at_end()) {
          c.fail(std::to_string(c.remaining()) + " bytes after the declared memories");
        }
        break;
      }
      case 7: {  // exports
        uint32_t n = c.u32();
        if (n > ModuleBounds::kExports) {
          // Not read further: the required exports would be reported missing as well.
          std::string bound;
          check_bound(bound, "exports", n, ModuleBounds::kExports, "exports");
          return Status(StatusCode::kInvalidModule, bound);
        }
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
      case 10: {  // code: what V8 compiles
        code_bodies = c.u32();
        check_bound(problems, "code section", static_cast<uint64_t>(s.end - s.payload),
                    ModuleBounds::kCodeBytes, "bytes");
        if (code_bodies > ModuleBounds::kFunctions) break;  // refused by the function section
        // Function indices count the imported functions first.
        uint64_t first_index = 0;
        for (const Import& imp : info.imports) first_index += imp.kind == ExternKind::kFunction;
        // One problem per bound, naming the first function over it: a bomb has them all over.
        std::string body_problem, locals_problem;
        uint64_t bodies_over = 0, locals_over = 0;
        uint64_t locals = 0;
        for (uint32_t i = 0; i < code_bodies && c.ok(); ++i) {
          uint32_t size = c.u32();
          if (!c.ok()) break;
          if (size > c.remaining()) {
            c.fail("function body size " + std::to_string(size) + " past the end of the section");
            break;
          }
          const uint8_t* body_end = c.position() + size;
          const std::string function = "function " + std::to_string(first_index + i);
          if (size > ModuleBounds::kFunctionBodyBytes && bodies_over++ == 0) {
            check_bound(body_problem, function + ": body", size, ModuleBounds::kFunctionBodyBytes,
                        "bytes");
          }
          Cursor b(c.position(), body_end);
          uint32_t entries = b.u32();
          uint64_t declared = 0;
          for (uint32_t j = 0; j < entries && b.ok(); ++j) {
            declared += b.u32();
            b.byte();
          }
          if (!b.ok()) {
            c.fail(function + ": malformed local declarations");
            break;
          }
          if (declared > ModuleBounds::kLocalsPerFunction && locals_over++ == 0) {
            check_bound(locals_problem, function + ": locals", declared,
                        ModuleBounds::kLocalsPerFunction, "locals");
          }
          locals += declared;
          c.skip(size);
        }
        auto others = [](uint64_t over) {
          return over > 1 ? " (and " + std::to_string(over - 1) + " more functions over it)"
                          : std::string();
        };
        if (bodies_over > 0) add_problem(problems, body_problem + others(bodies_over));
        if (locals_over > 0) add_problem(problems, locals_problem + others(locals_over));
        check_bound(problems, "locals", locals, ModuleBounds::kLocals, "locals in all functions");
        break;
      }
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
  info.functions = function_types.size();
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
  } else if (memories == 0) {
    add_problem(problems, "export memory names a memory the module does not define");
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

  // Tables first: their maxima decide what is left for the memory.
  std::vector<Limits> tables;
  std::vector<uint8_t> table_types;
  for (const Section& s : *sections) {
    if (s.id != 4) continue;
    Cursor c(s.payload, s.end);
    uint32_t n = c.u32();
    if (n > ModuleBounds::kTables) {
      return Status(StatusCode::kInvalidModule, "tables: " + std::to_string(n) +
                                                    " tables, more than the bound of " +
                                                    std::to_string(ModuleBounds::kTables));
    }
    for (uint32_t i = 0; i < n && c.ok(); ++i) {
      table_types.push_back(c.byte());
      tables.push_back(read_limits(c));
    }
    if (!c.ok() || !c.at_end()) {
      return Status(StatusCode::kInvalidModule,
                    "malformed module: table section: " +
                        (c.ok() ? std::to_string(c.remaining()) + " bytes after the declared tables"
                                : c.error()));
    }
  }
  uint64_t initial_elements = 0;
  for (const Limits& t : tables) initial_elements += t.initial;
  if (initial_elements > ModuleBounds::kTableElements) {
    return Status(StatusCode::kInvalidModule,
                  "tables: " + std::to_string(initial_elements) +
                      " elements at their initial size, more than the bound of " +
                      std::to_string(ModuleBounds::kTableElements));
  }
  uint64_t table_elements = 0;
  if (!tables.empty()) {
    const uint64_t share = (ModuleBounds::kTableElements - initial_elements) / tables.size();
    for (Limits& t : tables) {
      t.max = std::min(t.max.value_or(UINT64_MAX), t.initial + share);
      table_elements += *t.max;
    }
  }
  const uint64_t table_bytes = table_elements * InstanceCost::kTableElementBytes;
  const uint64_t table_pages = table_bytes / kWasmPageSize;
  const uint64_t limit_pages = limit_bytes / kWasmPageSize;
  const uint64_t memory_pages = limit_pages > table_pages ? limit_pages - table_pages : 0;

  std::vector<uint8_t> out(binary.begin(), binary.begin() + 8);
  out.reserve(binary.size() + 16);
  for (const Section& s : *sections) {
    std::vector<uint8_t> payload;
    if (s.id == 4) {
      put_leb(payload, tables.size());
      for (size_t i = 0; i < tables.size(); ++i) {
        payload.push_back(table_types[i]);
        payload.push_back(1);  // has a maximum
        put_leb(payload, tables[i].initial);
        put_leb(payload, *tables[i].max);
      }
    } else if (s.id == 5) {
      Cursor c(s.payload, s.end);
      uint32_t n = c.u32();
      put_leb(payload, n);
      for (uint32_t i = 0; i < n && c.ok(); ++i) {
        Limits l = read_limits(c);
        if (l.initial > memory_pages) {
          if (table_pages == 0) {
            return Status(StatusCode::kLimitExceeded,
                          "initial memory of " + std::to_string(l.initial * kWasmPageSize) +
                              " bytes exceeds the memory limit of " + std::to_string(limit_bytes) +
                              " bytes");
          }
          return Status(StatusCode::kLimitExceeded,
                        "initial memory of " + std::to_string(l.initial * kWasmPageSize) +
                            " bytes and tables of " + std::to_string(table_bytes) +
                            " bytes at their maximum exceed the memory limit of " +
                            std::to_string(limit_bytes) + " bytes");
        }
        uint64_t max = l.max ? std::min(*l.max, memory_pages) : memory_pages;
        payload.push_back(static_cast<uint8_t>((l.flags & ~1u) | 1u));
        put_leb(payload, l.initial);
        put_leb(payload, max);
      }
      if (!c.ok() || !c.at_end()) {
        return Status(StatusCode::kInvalidModule, "malformed module: memory section: " + c.error());
      }
    } else {
      out.insert(out.end(), s.begin, s.end);
      continue;
    }
    out.push_back(s.id);
    put_leb(out, payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
  }
  return out;
}

}  // namespace wasmq::wasm
