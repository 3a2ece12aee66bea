// A fast 64-bit hash of bytes, for in-memory hash tables on the hot path (the module result
// cache). Not cryptographic: tables that hold keys an outsider chooses seed it with
// hash_seed() (random per process) and compare the full key on every match, so a collision
// costs a miss, never a wrong answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace wasmq {

namespace hash_detail {

inline uint64_t read64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t read32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 128-bit product of a and b, folded to 64 bits (the mixing step of wyhash).
inline uint64_t mix(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline constexpr uint64_t kSecret[4] = {0xa0761d6478bd642full, 0xe7037ed1a0b428dbull,
                                        0x8ebc6af09c88c6e3ull, 0x589965cc75374cc3ull};

}  // namespace hash_detail

// Hashes `size` bytes at `data` with `seed`. About a byte per 0.1 ns on long inputs.
inline uint64_t hash_bytes(const void* data, size_t size, uint64_t seed) {
  using namespace hash_detail;
  const auto* p = static_cast<const uint8_t*>(data);
  seed ^= mix(seed ^ kSecret[0], kSecret[1]);
  uint64_t a, b;
  if (size <= 16) {
    if (size >= 4) {
      a = (read32(p) << 32) | read32(p + ((size >> 3) << 2));
      b = (read32(p + size - 4) << 32) | read32(p + size - 4 - ((size >> 3) << 2));
    } else if (size > 0) {
      a = (uint64_t{p[0]} << 16) | (uint64_t{p[size >> 1]} << 8) | p[size - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t left = size;
    if (left > 48) {
      uint64_t s1 = seed, s2 = seed;
      do {
        seed = mix(read64(p) ^ kSecret[1], read64(p + 8) ^ seed);
        s1 = mix(read64(p + 16) ^ kSecret[2], read64(p + 24) ^ s1);
        s2 = mix(read64(p + 32) ^ kSecret[3], read64(p + 40) ^ s2);
        p += 48;
        left -= 48;
      } while (left > 48);
      seed ^= s1 ^ s2;
    }
    while (left > 16) {
      seed = mix(read64(p) ^ kSecret[1], read64(p + 8) ^ seed);
      p += 16;
      left -= 16;
    }
    a = read64(p + left - 16);
    b = read64(p + left - 8);
  }
  a ^= kSecret[1];
  b ^= seed;
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  a = static_cast<uint64_t>(r);
  b = static_cast<uint64_t>(r >> 64);
  return mix(a ^ kSecret[0] ^ size, b ^ kSecret[1]);
}

inline uint64_t hash_bytes(std::string_view bytes, uint64_t seed) {
  return hash_bytes(bytes.data(), bytes.size(), seed);
}

// A seed drawn once per process from the system's random source.
uint64_t hash_seed();

}  // namespace wasmq
