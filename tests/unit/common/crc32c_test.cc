#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace wasmq {
namespace {

TEST(Crc32c, MatchesKnownVectors) {
  // RFC 3720 (iSCSI) B.4 and the usual check value.
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32c, HardwareAndPortableAgreeAndExtend) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7 + 3);
  for (size_t n : {0ul, 1ul, 7ul, 8ul, 9ul, 63ul, 999ul, 1000ul}) {
    EXPECT_EQ(crc32c(0, data.data(), n), crc32c_portable(0, data.data(), n)) << n;
  }
  uint32_t whole = crc32c(0, data.data(), data.size());
  uint32_t split = crc32c(crc32c(0, data.data(), 333), data.data() + 333, data.size() - 333);
  EXPECT_EQ(whole, split);
}

}  // namespace
}  // namespace wasmq
