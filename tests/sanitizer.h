// Whether this test binary runs under AddressSanitizer. Its allocator, quarantine and shadow
// memory change every figure of the process's memory (RSS, the JS heap's growth, a child's
// resident memory), so tests that measure memory skip themselves there, saying why; the same
// behaviour is checked in the normal build.
#pragma once

namespace wasmq::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderAddressSanitizer = true;
#else
inline constexpr bool kUnderAddressSanitizer = false;
#endif

inline constexpr const char* kMemoryFiguresDistorted =
    "memory figures are not the program's own under AddressSanitizer";

}  // namespace wasmq::testing
