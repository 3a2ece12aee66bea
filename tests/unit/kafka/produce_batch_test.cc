#include "kafka/produce_batch.h"

#include <gtest/gtest.h>

#include "common/crc32c.h"
#include "storage/compression.h"
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
  std::string not_gzip = good;
  set_attributes(not_gzip, 1);  // says gzip, holds plain records
  EXPECT_EQ(check_produce_batch(span_of(not_gzip), false).error, error::kCorruptMessage);
  std::string codec5 = good;
  set_attributes(codec5, 5);
  EXPECT_EQ(check_produce_batch(span_of(codec5), false).error, error::kUnsupportedCompressionType);
  std::string transactional = good;
  set_attributes(transactional, 0x10);
  EXPECT_EQ(check_produce_batch(span_of(transactional), false).error, error::kInvalidRecord);
}

// A batch as a client compresses it: the records section compressed, the length and CRC
// made right.
std::string compressed(const std::string& plain, storage::Codec codec) {
  std::string b = plain;
  EXPECT_TRUE(storage::compress_batch(&b, codec).is_ok());
  return b;
}

// Binary keys and header values are stored as they came where no pipeline runs; a module
// cannot be given them, so a batch for a pipeline is refused; header names must be text.
TEST(ProduceBatch, BinaryKeysAreStoredUnlessAPipelineWouldSeeThem) {
  std::vector<Message> messages(2);
  messages[0].key = std::string("\xff\x00", 2);
  messages[0].value = "v";
  messages[1].value = "w";
  messages[1].headers = {{"h", std::string("\xc3", 1)}};
  std::string b;
  storage::encode_batch(0, messages, &b);
  EXPECT_EQ(check_produce_batch(span_of(b), false).error, error::kNone);
  CheckedBatch piped = check_produce_batch(span_of(b), true);
  EXPECT_EQ(piped.error, error::kInvalidRecord);
  EXPECT_NE(piped.why.find("record 0: the key is not UTF-8"), std::string::npos) << piped.why;
  std::vector<Message> bad_name(1);
  bad_name[0].headers = {{std::string("\xff"), "x"}};
  std::string n;
  storage::encode_batch(0, bad_name, &n);
  CheckedBatch named = check_produce_batch(span_of(n), false);
  EXPECT_EQ(named.error, error::kInvalidRecord);
  EXPECT_NE(named.why.find("header name is not UTF-8"), std::string::npos) << named.why;
}

TEST(ProduceBatch, BatchesCompressedWithEachOfKafkasCodecsAreAcceptedAndDecode) {
  const std::string plain = batch_of(50);
  for (auto codec : {storage::Codec::kGzip, storage::Codec::kSnappy, storage::Codec::kLz4,
                     storage::Codec::kZstd}) {
    const std::string b = compressed(plain, codec);
    CheckedBatch c = check_produce_batch(span_of(b), true);
    ASSERT_EQ(c.error, error::kNone) << storage::codec_name(static_cast<int>(codec)) << ": " << c.why;
    EXPECT_EQ(c.batch.bytes, b);  // stored compressed, as it came
    ASSERT_EQ(c.records.size(), 50u);
    EXPECT_EQ(c.records[49].message.value, "value 49");
    EXPECT_EQ(c.records[49].message.headers, (std::vector<Header>{{"h", "x"}}));
    // Damage inside the compressed stream (CRC made right again) is a corrupt message.
    std::string damaged = b;
    damaged[damaged.size() - 2] ^= 0x55;
    set_attributes(damaged, static_cast<int16_t>(codec));
    EXPECT_NE(check_produce_batch(span_of(damaged), false).error, error::kNone)
        << storage::codec_name(static_cast<int>(codec));
  }
}

TEST(ProduceBatch, ABatchThatExpandsPastTheBoundIsRefused) {
  // 1 MiB of zeros per record compresses to almost nothing; 70 of them expand past 64 MiB.
  std::vector<Message> messages(70);
  for (auto& m : messages) m.value = std::string(1 << 20, '\0');
  std::string plain;
  storage::encode_batch(0, messages, &plain);
  const std::string bomb = compressed(plain, storage::Codec::kZstd);
  ASSERT_LT(bomb.size(), kMaxBatchBytes);
  CheckedBatch c = check_produce_batch(span_of(bomb), false);
  EXPECT_EQ(c.error, error::kCorruptMessage);
  EXPECT_NE(c.why.find("expand past"), std::string::npos) << c.why;
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
  EXPECT_EQ(c.error, error::kInvalidRecord) << c.why;
}

}  // namespace
}  // namespace wasmq::kafka
