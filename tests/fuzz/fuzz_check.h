// What the fuzz targets share: FUZZ_CHECK, an invariant that holds for every input. A broken one
// prints what was expected and aborts, which libFuzzer reports as a crash and saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#define FUZZ_CHECK(condition, what)                                                   \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, \
                   #condition, std::string(what).c_str());                           \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace wasmq::fuzz {

// Known gaps: invariants that the code does not hold yet, each named in docs/testing.md
// ("Known gaps") with the finding it belongs to. They are skipped unless WASMQ_FUZZ_STRICT is
// set, so that the runs stay useful for everything else; a fixed gap is deleted from its target.
inline bool strict() {
  static const bool value = std::getenv("WASMQ_FUZZ_STRICT") != nullptr;
  return value;
}
inline bool known_gap(bool applies) { return applies && !strict(); }

inline std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace wasmq::fuzz
