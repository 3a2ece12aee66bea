// Builds small WebAssembly binaries in tests, to probe validation precisely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wasmq::testing {

constexpr uint8_t kI32 = 0x7F;
constexpr uint8_t kI64 = 0x7E;

// What a function's body holds besides returning zeros: `locals` declared i32 locals (in one
// declaration) and `nops` nop instructions (to make the body larger).
struct FunctionBody {
  uint32_t locals = 0;
  uint32_t nops = 0;
};

class WasmBuilder {
 public:
  struct Func {
    std::vector<uint8_t> params, results;
  };

  // Adds an imported function.
  void import_function(std::string module, std::string name, Func type) {
    imports_.push_back({std::move(module), std::move(name), type_index(type), 0});
  }
  void import_memory(std::string module, std::string name) {
    imports_.push_back({std::move(module), std::move(name), 0, 2});
  }
  using Body = FunctionBody;

  // Adds a function returning zeros; exported under `name` when not empty. Returns its index
  // among the module's own functions.
  uint32_t function(Func type, std::string export_name = "", Body body = {}) {
    functions_.push_back(type_index(type));
    bodies_.push_back({type, body});
    uint32_t local = static_cast<uint32_t>(functions_.size() - 1);
    if (!export_name.empty()) exports_.push_back({std::move(export_name), 0, local});
    return local;
  }
  // Adds `n` functions () -> () with `body`.
  void functions(uint32_t n, Body body = {}) {
    for (uint32_t i = 0; i < n; ++i) function({{}, {}}, "", body);
  }
  // Adds a funcref table.
  void table(uint32_t initial, std::optional<uint32_t> max = std::nullopt) {
    tables_.push_back({initial, max, 0});
  }
  // Adds `n` immutable i32 globals, `n` empty active data segments, `n` active element segments
  // of `entries` elements each (at offset 0 of table 0, all function 0), `n` tags of type () -> ().
  void globals(uint32_t n) { globals_ += n; }
  // Adds `n` immutable i32 globals, each exported (as "g0", "g1", ...).
  void exported_globals(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      exports_.push_back({"g" + std::to_string(i), 3, globals_ + i});
    }
    globals_ += n;
  }
  // Adds `n` distinct functions () -> (), each exported (as "f0", "f1", ...).
  void exported_functions(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) function({{}, {}}, "f" + std::to_string(i));
  }
  // Fills every table at its initial size with references to the module's own functions, one
  // active element segment per table (function i % functions at element i).
  void fill_tables() { fill_tables_ = true; }
  void data_segments(uint32_t n) { data_segments_ += n; }
  void element_segments(uint32_t n, uint32_t entries = 0) {
    element_segments_ += n;
    element_entries_ = entries;
  }
  void tags(uint32_t n) {
    if (n > 0) type_index({{}, {}});
    tags_ += n;
  }
  void memory(uint32_t initial, std::optional<uint32_t> max = std::nullopt, uint8_t extra_flags = 0) {
    memory_ = {initial, max, extra_flags};
  }
  void export_memory(std::string name = "memory") { exports_.push_back({std::move(name), 2, 0}); }

  // A module with the required ABI exports and a memory of `pages`.
  static WasmBuilder abi_module(uint32_t pages = 1) {
    WasmBuilder b;
    b.memory(pages);
    b.export_memory();
    b.function({{kI32}, {kI32}}, "alloc");
    b.function({{kI32, kI32}, {}}, "dealloc");
    b.function({{kI32, kI32}, {kI32}}, "process_message");
    return b;
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> out = {0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00};
    std::vector<uint8_t> s;
    leb(s, types_.size());
    for (const auto& t : types_) {
      s.push_back(0x60);
      leb(s, t.params.size());
      s.insert(s.end(), t.params.begin(), t.params.end());
      leb(s, t.results.size());
      s.insert(s.end(), t.results.begin(), t.results.end());
    }
    section(out, 1, s);
    if (!imports_.empty()) {
      s.clear();
      leb(s, imports_.size());
      for (const auto& i : imports_) {
        name(s, i.module);
        name(s, i.name);
        s.push_back(i.kind);
        if (i.kind == 0) {
          leb(s, i.type);
        } else {
          s.push_back(0);
          leb(s, 1);
        }
      }
      section(out, 2, s);
    }
    s.clear();
    leb(s, functions_.size());
    for (uint32_t t : functions_) leb(s, t);
    section(out, 3, s);
    if (!tables_.empty()) {
      s.clear();
      leb(s, tables_.size());
      for (const auto& t : tables_) {
        s.push_back(0x70);
        s.push_back(t.max ? 1 : 0);
        leb(s, t.initial);
        if (t.max) leb(s, *t.max);
      }
      section(out, 4, s);
    }
    if (memory_) {
      s.clear();
      leb(s, 1);
      s.push_back(static_cast<uint8_t>((memory_->max ? 1 : 0) | memory_->extra_flags));
      leb(s, memory_->initial);
      if (memory_->max) leb(s, *memory_->max);
      section(out, 5, s);
    }
    if (tags_ > 0) {
      s.clear();
      leb(s, tags_);
      for (uint32_t i = 0; i < tags_; ++i) {
        s.push_back(0);  // exception
        leb(s, type_of({{}, {}}));
      }
      section(out, 13, s);
    }
    if (globals_ > 0) {
      s.clear();
      leb(s, globals_);
      for (uint32_t i = 0; i < globals_; ++i) s.insert(s.end(), {kI32, 0x00, 0x41, 0x00, 0x0B});
      section(out, 6, s);
    }
    s.clear();
    leb(s, exports_.size());
    for (const auto& e : exports_) {
      name(s, e.name);
      s.push_back(e.kind);
      // Function indices count imported functions first.
      leb(s, e.kind == 0 ? e.index + imported_functions() : e.index);
    }
    section(out, 7, s);
    if (fill_tables_ && element_segments_ == 0 && !tables_.empty()) {
      s.clear();
      leb(s, tables_.size());
      for (size_t t = 0; t < tables_.size(); ++t) {
        s.push_back(0x02);  // active, explicit table index, element kind
        leb(s, t);
        s.insert(s.end(), {0x41, 0x00, 0x0B, 0x00});  // offset i32.const 0; funcref
        leb(s, tables_[t].initial);
        for (uint32_t j = 0; j < tables_[t].initial; ++j) {
          leb(s, imported_functions() + j % functions_.size());
        }
      }
      section(out, 9, s);
    }
    if (element_segments_ > 0) {
      s.clear();
      leb(s, element_segments_);
      for (uint32_t i = 0; i < element_segments_; ++i) {
        s.insert(s.end(), {0x00, 0x41, 0x00, 0x0B});  // active, table 0, offset i32.const 0
        leb(s, element_entries_);
        for (uint32_t j = 0; j < element_entries_; ++j) s.push_back(0x00);
      }
      section(out, 9, s);
    }
    s.clear();
    leb(s, bodies_.size());
    for (const auto& [f, extra] : bodies_) {
      std::vector<uint8_t> body;
      if (extra.locals > 0) {
        body.push_back(0x01);
        leb(body, extra.locals);
        body.push_back(kI32);
      } else {
        body.push_back(0x00);  // no locals
      }
      body.insert(body.end(), extra.nops, 0x01);
      for (uint8_t r : f.results) {
        if (r == kI64) {
          body.insert(body.end(), {0x42, 0x00});
        } else {
          body.insert(body.end(), {0x41, 0x00});
        }
      }
      body.push_back(0x0B);
      leb(s, body.size());
      s.insert(s.end(), body.begin(), body.end());
    }
    section(out, 10, s);
    if (data_segments_ > 0) {
      s.clear();
      leb(s, data_segments_);
      for (uint32_t i = 0; i < data_segments_; ++i)
        s.insert(s.end(), {0x00, 0x41, 0x00, 0x0B, 0x00});
      section(out, 11, s);
    }
    return out;
  }

 private:
  struct ImportEntry {
    std::string module, name;
    uint32_t type;
    uint8_t kind;
  };
  struct ExportEntry {
    std::string name;
    uint8_t kind;
    uint32_t index;
  };
  struct MemoryEntry {
    uint32_t initial;
    std::optional<uint32_t> max;
    uint8_t extra_flags;
  };
  uint32_t type_of(const Func& f) const {
    for (size_t i = 0; i < types_.size(); ++i) {
      if (types_[i].params == f.params && types_[i].results == f.results)
        return static_cast<uint32_t>(i);
    }
    return 0;
  }

  uint32_t imported_functions() const {
    uint32_t n = 0;
    for (const auto& i : imports_) n += i.kind == 0;
    return n;
  }
  uint32_t type_index(const Func& f) {
    for (size_t i = 0; i < types_.size(); ++i) {
      if (types_[i].params == f.params && types_[i].results == f.results) return static_cast<uint32_t>(i);
    }
    types_.push_back(f);
    return static_cast<uint32_t>(types_.size() - 1);
  }
  static void leb(std::vector<uint8_t>& out, uint64_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v) b |= 0x80;
      out.push_back(b);
    } while (v);
  }
  static void name(std::vector<uint8_t>& out, const std::string& n) {
    leb(out, n.size());
    out.insert(out.end(), n.begin(), n.end());
  }
  static void section(std::vector<uint8_t>& out, uint8_t id, const std::vector<uint8_t>& payload) {
    out.push_back(id);
    leb(out, payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
  }

  std::vector<Func> types_;
  std::vector<ImportEntry> imports_;
  std::vector<uint32_t> functions_;
  std::vector<std::pair<Func, Body>> bodies_;
  std::vector<MemoryEntry> tables_;
  uint32_t globals_ = 0;
  uint32_t data_segments_ = 0;
  uint32_t element_segments_ = 0;
  uint32_t element_entries_ = 0;
  uint32_t tags_ = 0;
  bool fill_tables_ = false;
  std::vector<ExportEntry> exports_;
  std::optional<MemoryEntry> memory_;
};

}  // namespace wasmq::testing
