#include "wasm/binary.h"

#include <algorithm>

#include "wasm/binary_internal.h"

namespace wasmq::wasm {
namespace {

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

  check_abi(info, memories, problems);

  if (!problems.empty()) return Status(StatusCode::kInvalidModule, problems);
  return info;
}

}  // namespace wasmq::wasm
