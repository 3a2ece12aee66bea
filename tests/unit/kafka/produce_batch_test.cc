#include "kafka/produce_batch.h"

#include <gtest/gtest.h>

#include "common/crc32c.h"
#include "kafka/protocol.h"

namespace wasmq::kafka {
namespace {

std::string batch_of(int records, int64_t base = 0) {
  std::vector<Message> messages;
  for (int i = 0; i < records; ++i) {
    Message m;
    m.key = "k" + std::to_string(i);
    m.value = "value " + std::to_string(i);
    m.headers = {{"h", "x"}};
    m.timestamp = 1'700'000'000'000 + i;
    messages.push_back(std::move(m));
  }
  std::string out;
  storage::encode_batch(base, messages, &out);
  return out;
}

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Sets the attributes and makes the CRC right again, as a client would.
void set_attributes(std::string& b, int16_t attributes) {
  b[21] = static_cast<char>(attributes >> 8);
  b[22] = static_cast<char>(attributes & 0xff);
  uint32_t crc = crc32c(0, b.data() + 21, b.size() - 21);
  for (int i = 0; i < 4; ++i) b[17 + i] = static_cast<char>(crc >> (24 - 8 * i));
  ASSERT_TRUE(storage::batch_crc_ok(span_of(b)));
}

TEST(ProduceBatch, AWholeBatchIsAcceptedAsItCame) {
  const std::string b = batch_of(3, 99);  // a client's base offset is ignored (written in later)
  CheckedBatch c = check_produce_batch(span_of(b), true);
  ASSERT_EQ(c.error, error::kNone) << c.why;
  EXPECT_EQ(c.batch.bytes, b);
  EXPECT_EQ(c.batch.records, 3u);
  ASSERT_EQ(c.records.size(), 3u);
  EXPECT_EQ(c.records[2].message.value, "value 2");
  EXPECT_TRUE(check_produce_batch(span_of(b), false).records.empty());
}

TEST(ProduceBatch, BadBytesGetTheErrorsAKafkaClientExpects) {
  const std::string good = batch_of(2);
  std::string crc = good;
  crc.back() ^= 1;
  EXPECT_EQ(check_produce_batch(span_of(crc), false).error, error::kCorruptMessage);
  EXPECT_EQ(check_produce_batch(span_of(good.substr(0, good.size() - 3)), false).error,
            error::kCorruptMessage);
  EXPECT_EQ(check_produce_batch(span_of(good + good), false).error, error::kInvalidRecord);
  EXPECT_EQ(check_produce_batch(std::nullopt, false).error, error::kInvalidRecord);
  EXPECT_EQ(check_produce_batch(span_of(std::string("garbage")), false).error,
            error::kCorruptMessage);
  std::string gzip = good;
  set_attributes(gzip, 1);
  EXPECT_EQ(check_produce_batch(span_of(gzip), false).error, error::kUnsupportedCompressionType);
  std::string transactional = good;
  set_attributes(transactional, 0x10);
  EXPECT_EQ(check_produce_batch(span_of(transactional), false).error, error::kInvalidRecord);
}

TEST(ProduceBatch, ABatchLargerThanMessageMaxBytesIsTooLarge) {
  Message m;
  m.value = std::string(kMaxBatchBytes, 'x');
  std::string big;
  storage::encode_batch(0, std::vector<Message>{m}, &big);
  EXPECT_EQ(check_produce_batch(span_of(big), false).error, error::kMessageTooLarge);
}

TEST(ProduceBatch, OffsetDeltasMustCountTheRecords) {
  // lastOffsetDelta (bytes 23-26) raised past the record count, CRC made right.
  std::string b = batch_of(2);
  b[26] = 5;
  set_attributes(b, 0);
  CheckedBatch c = check_produce_batch(span_of(b), false);
  EXPECT_NE(c.error, error::kNone);
}

}  // namespace
}  // namespace wasmq::kafka
