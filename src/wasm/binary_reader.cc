// How a module's bytes are read (binary_internal.h): limits, constant expressions, the sections and
// their order, and the problem list.
#include <cstring>

#include "wasm/binary_internal.h"

namespace wasmq::wasm {

Limits read_limits(Cursor& c) {
  Limits l;
  l.flags = c.byte();
  if (l.flags > 7) c.fail("invalid limits flags " + std::to_string(l.flags));
  bool is64 = l.flags & 4;
  l.initial = c.leb_u(is64 ? 64 : 32);
  if (l.flags & 1) l.max = c.leb_u(is64 ? 64 : 32);
  return l;
}

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

int section_rank(uint8_t id) {
  static constexpr uint8_t kOrder[] = {1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11};
  for (size_t i = 0; i < sizeof kOrder; ++i) {
    if (kOrder[i] == id) return static_cast<int>(i) + 1;
  }
  return 0;
}

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

}  // namespace wasmq::wasm
