#include "kafka/wire.h"

#include <gtest/gtest.h>

#include <limits>

namespace wasmq::kafka {
namespace {

TEST(KafkaWire, PrimitivesRoundTrip) {
  std::string out;
  Writer w(&out);
  w.i8(-3);
  w.i16(-2);
  w.i32(std::numeric_limits<int32_t>::min());
  w.i64(std::numeric_limits<int64_t>::max());
  w.varint(-1);
  w.varint(std::numeric_limits<int32_t>::max());
  w.uvarint(300);
  w.string("topic");
  w.nullable_string(std::nullopt);
  w.compact_string("héllo");
  w.compact_nullable_string(std::nullopt);
  w.bytes("abc");
  w.nullable_bytes(std::nullopt);
  w.empty_tagged_fields();

  Reader r(out);
  EXPECT_EQ(r.i8(), -3);
  EXPECT_EQ(r.i16(), -2);
  EXPECT_EQ(r.i32(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(r.i64(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(r.varint(), -1);
  EXPECT_EQ(r.varint(), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(r.uvarint(), 300u);
  EXPECT_EQ(r.string(), "topic");
  EXPECT_FALSE(r.nullable_string().has_value());
  EXPECT_EQ(r.compact_string(), "héllo");
  EXPECT_FALSE(r.compact_nullable_string().has_value());
  auto b = r.bytes();
  EXPECT_EQ(std::string(b.begin(), b.end()), "abc");
  EXPECT_FALSE(r.nullable_bytes().has_value());
  r.skip_tagged_fields();
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(KafkaWire, BigEndianOnTheWire) {
  std::string out;
  Writer w(&out);
  w.i32(0x01020304);
  EXPECT_EQ(out, std::string("\x01\x02\x03\x04", 4));
}

TEST(KafkaWire, TruncatedInputFailsAndStaysFailed) {
  Reader r(std::string_view("\x00\x05" "ab", 4));
  EXPECT_EQ(r.string(), "");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "truncated bytes");
  EXPECT_EQ(r.i32(), 0);  // sticky: later reads return zero values
  EXPECT_EQ(r.error(), "truncated bytes");
}

TEST(KafkaWire, AnArrayCountLargerThanTheRequestIsRefusedBeforeAnyAllocation) {
  std::string out;
  Writer w(&out);
  w.i32(1'000'000'000);
  w.i32(0);
  Reader r(out);
  EXPECT_EQ(r.array_length(4), 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "array length larger than the request");

  // Exactly as many elements as bytes allow is fine.
  std::string fits;
  Writer f(&fits);
  f.i32(2);
  f.i32(7);
  f.i32(8);
  Reader ok(fits);
  EXPECT_EQ(ok.array_length(4), 2);
  EXPECT_TRUE(ok.ok());
}

TEST(KafkaWire, NegativeLengthsAreMalformed) {
  std::string out;
  Writer w(&out);
  w.i16(-2);
  Reader r(out);
  r.nullable_string();
  EXPECT_EQ(r.error(), "negative string length");

  std::string bytes;
  Writer b(&bytes);
  b.i32(-7);
  Reader rb(bytes);
  rb.nullable_bytes();
  EXPECT_EQ(rb.error(), "negative bytes length");

  std::string arr;
  Writer a(&arr);
  a.i32(-5);
  Reader ra(arr);
  ra.array_length();
  EXPECT_EQ(ra.error(), "negative array length");
}

TEST(KafkaWire, OverlongVarintsAreMalformed) {
  Reader r(std::string_view("\xff\xff\xff\xff\xff\x01", 6));
  r.uvarint();
  EXPECT_EQ(r.error(), "varint longer than 32 bits");
  Reader l(std::string_view("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));
  l.varlong();
  EXPECT_EQ(l.error(), "varlong longer than 64 bits");
}

TEST(KafkaWire, ANullStringWhereOneIsRequiredIsMalformed) {
  std::string out;
  Writer w(&out);
  w.nullable_string(std::nullopt);
  Reader r(out);
  r.string();
  EXPECT_EQ(r.error(), "null string where one is required");
}

}  // namespace
}  // namespace wasmq::kafka
