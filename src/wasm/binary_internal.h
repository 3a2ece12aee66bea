// Private to the files that implement binary.h: the bounded cursor over a module's bytes, the
// section reader, the problem list inspect_module builds, and its ABI checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "wasm/binary.h"

namespace wasmq::wasm {

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

Limits read_limits(Cursor& c);

// Skips a constant expression (global initializers, segment offsets, element expressions) up
// to and including its `end`: the instructions of the MVP, reference types and bulk memory.
void skip_const_expr(Cursor& c);

// A section's position in the order the binary format requires (the tag section of the
// exception-handling proposal sits between memory and global, datacount before code); 0 for an
// unknown id.
int section_rank(uint8_t id);

struct Section {
  uint8_t id;
  const uint8_t* begin;  // start of the section header (id byte)
  const uint8_t* payload;
  const uint8_t* end;
};

// Splits the binary into sections after checking magic and version.
Result<std::vector<Section>> split_sections(std::span<const uint8_t> binary);

// Adds `p` to `problems`, the "; "-separated list of what is wrong with a module.
void add_problem(std::string& problems, const std::string& p);
// "<what>: N <unit>, more than the bound of M" when n > bound.
void check_bound(std::string& problems, const std::string& what, uint64_t n, uint64_t bound,
                 const char* unit);

// The ABI checks on what inspect_module read (module-abi.md): imports only from the WASI subset
// with their exact signatures, the one memory, and the exports the host calls with their
// signatures. Adds each problem to `problems` and sets `info`'s has_* flags for the optional
// exports present; `memories` is how many memories the module imports and defines.
void check_abi(ModuleInfo& info, int memories, std::string& problems);

}  // namespace wasmq::wasm
