#include "common/message.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/bincode.h"

namespace wasmq {
namespace {

TEST(HeaderSet, KeepsFirstPositionAndLastValue) {
  HeaderSet set;
  ASSERT_TRUE(set.add("a", "1").is_ok());
  ASSERT_TRUE(set.add("b", "2").is_ok());
  ASSERT_TRUE(set.add("a", "3").is_ok());
  auto headers = set.release();
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0], Header("a", "3"));
  EXPECT_EQ(headers[1], Header("b", "2"));
}

// The few names found by a scan and the many found by the index (built past 16 names, the
// names moving as the list grows) keep the same rule: first position, last value.
TEST(HeaderSet, KeepsTheRuleAcrossTheSwitchToAnIndex) {
  HeaderSet set;
  set.reserve(3);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(set.add("name-" + std::to_string(i), std::to_string(round * 100 + i)).is_ok());
      ASSERT_EQ(set.size(), round == 0 ? static_cast<size_t>(i + 1) : 40u);
    }
  }
  auto headers = set.release();
  ASSERT_EQ(headers.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(headers[i], Header("name-" + std::to_string(i), std::to_string(100 + i)));
  }
}

// The de-duplication is linear: a million distinct names, then each of them again, in one test.
// A scan per name (the quadratic way) would make about 10^12 string comparisons here, far past
// the test's timeout.
TEST(HeaderSet, DeduplicatesAMillionHeadersInLinearTime) {
  constexpr size_t kCount = 1'000'000;
  HeaderSet set(SIZE_MAX, SIZE_MAX);
  for (size_t i = 0; i < kCount; ++i) ASSERT_TRUE(set.add("h" + std::to_string(i), "x").is_ok());
  for (size_t i = 0; i < kCount; ++i) ASSERT_TRUE(set.add("h" + std::to_string(i), "y").is_ok());
  auto headers = set.release();
  ASSERT_EQ(headers.size(), kCount);
  EXPECT_EQ(headers.front(), Header("h0", "y"));
  EXPECT_EQ(headers.back(), Header("h999999", "y"));
}

TEST(HeaderSet, RefusesHeadersBeyondTheCountLimit) {
  HeaderSet set;
  for (size_t i = 0; i < kMaxHeaders; ++i) ASSERT_TRUE(set.add(std::to_string(i), "").is_ok());
  ASSERT_TRUE(set.add("0", "replaced").is_ok());  // a repeated name adds nothing
  Status s = set.add("one-too-many", "");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "1025 headers exceed the limit of 1024 per message");
  EXPECT_EQ(set.size(), kMaxHeaders);
}

TEST(HeaderSet, RefusesHeadersBeyondTheByteLimit) {
  HeaderSet set(10, 100);
  ASSERT_TRUE(set.add("a", std::string(90, 'x')).is_ok());
  Status s = set.add("b", std::string(10, 'x'));
  EXPECT_EQ(s.message(), "headers of 102 bytes exceed the limit of 100 per message");
  s = set.add("a", std::string(100, 'x'));  // replacing counts the new value
  EXPECT_EQ(s.message(), "headers of 101 bytes exceed the limit of 100 per message");
  auto headers = set.release();
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].second.size(), 90u);
}

// A module's result with more headers than the limit is refused from its count, before any
// header is read (H3: 100k headers took a minute to de-duplicate on an ETL worker).
TEST(HeaderSet, BincodeRefusesAResultOverTheHeaderLimit) {
  ProcessResult result;
  Message m;
  for (size_t i = 0; i <= kMaxHeaders; ++i) m.headers.emplace_back("h" + std::to_string(i), "");
  result.transformed_messages.push_back(m);
  ProcessResult decoded;
  Status s = bincode::decode(bincode::as_bytes(bincode::to_bytes(result)), &decoded);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1025 headers exceed the limit of 1024 per message"),
            std::string::npos)
      << s.message();

  m.headers.resize(kMaxHeaders);
  m.headers.back() = m.headers.front();  // a repeated name: the last value wins
  m.headers.back().second = "last";
  result.transformed_messages = {m};
  ASSERT_TRUE(bincode::decode(bincode::as_bytes(bincode::to_bytes(result)), &decoded).is_ok());
  ASSERT_EQ(decoded.transformed_messages.at(0).headers.size(), kMaxHeaders - 1);
  EXPECT_EQ(*decoded.transformed_messages[0].header("h0"), "last");
}

}  // namespace
}  // namespace wasmq
