// Builds small WebAssembly binaries in tests, to probe validation precisely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wasmq::testing {

constexpr uint8_t kI32 = 0x7F;
constexpr uint8_t kI64 = 0x7E;

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
  // Adds a function returning zeros; exported under `name` when not empty. Returns its index
  // among the module's own functions.
  uint32_t function(Func type, std::string export_name = "") {
    functions_.push_back(type_index(type));
    bodies_.push_back(type);
    uint32_t local = static_cast<uint32_t>(functions_.size() - 1);
    if (!export_name.empty()) exports_.push_back({std::move(export_name), 0, local});
    return local;
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
    if (memory_) {
      s.clear();
      leb(s, 1);
      s.push_back(static_cast<uint8_t>((memory_->max ? 1 : 0) | memory_->extra_flags));
      leb(s, memory_->initial);
      if (memory_->max) leb(s, *memory_->max);
      section(out, 5, s);
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
    s.clear();
    leb(s, bodies_.size());
    for (const auto& f : bodies_) {
      std::vector<uint8_t> body = {0x00};  // no locals
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
  std::vector<Func> bodies_;
  std::vector<ExportEntry> exports_;
  std::optional<MemoryEntry> memory_;
};

}  // namespace wasmq::testing
