// limit_memory (binary.h): a copy of a module whose table and memory maxima keep one instance
// within a memory limit.
#include <algorithm>

#include "wasm/binary.h"
#include "wasm/binary_internal.h"

namespace wasmq::wasm {

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
