#include "storage/record_batch.h"

#include "storage/compression.h"

#include <cstring>
#include <limits>

#include "common/crc32c.h"
#include "common/utf8.h"

namespace wasmq::storage {
namespace {

constexpr size_t kCrcOffset = 17;         // baseOffset 8 + batchLength 4 + epoch 4 + magic 1
constexpr size_t kAttributesOffset = 21;  // the CRC covers from here

void put_be(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void patch_be(std::string* out, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) (*out)[at + i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
}

uint64_t get_be(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
  return v;
}

void put_varlong(std::string* out, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    out->push_back(static_cast<char>(z | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<char>(z));
}

size_t varlong_size(int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  size_t n = 1;
  while (z >= 0x80) {
    z >>= 7;
    ++n;
  }
  return n;
}

void put_bytes(std::string* out, std::string_view s) {
  put_varlong(out, static_cast<int64_t>(s.size()));
  out->append(s);
}

size_t bytes_size(std::string_view s) {
  return varlong_size(static_cast<int64_t>(s.size())) + s.size();
}

// Bounded reader over one record area.
class Reader {
 public:
  Reader(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* position() const { return p_; }

  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool varlong(int64_t* v) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return fail("truncated varint");
      uint8_t b = *p_++;
      z |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) {
        *v = static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
        return true;
      }
    }
    return fail("varint longer than 10 bytes");
  }
  bool varint(int32_t* v) {
    int64_t l;
    if (!varlong(&l)) return false;
    if (l < std::numeric_limits<int32_t>::min() || l > std::numeric_limits<int32_t>::max()) {
      return fail("varint out of range");
    }
    *v = static_cast<int32_t>(l);
    return true;
  }
  bool byte(uint8_t* v) {
    if (p_ >= end_) return fail("truncated record");
    *v = *p_++;
    return true;
  }
  // Length-prefixed bytes; -1 means null (allowed only when `nullable`).
  bool bytes(std::string* out, bool* is_null, const char* what) {
    int32_t n;
    if (!varint(&n)) return false;
    if (n == -1 && is_null) {
      *is_null = true;
      return true;
    }
    if (n < 0) return fail(std::string("negative length of ") + what);
    if (static_cast<size_t>(n) > remaining()) return fail(std::string(what) + " past the end of the record");
    if (is_null) *is_null = false;
    out->assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  std::string error_;
};

Status corrupt(const std::string& why) {
  return Status(StatusCode::kInvalidArgument, "corrupt record batch: " + why);
}

// Timestamp deltas in two's-complement arithmetic: any two int64 timestamps have a delta that
// round-trips (base + delta == timestamp), with no signed overflow, as Java's long arithmetic
// in Kafka's own clients.
int64_t wrapping_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t wrapping_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

}  // namespace

namespace {

// Both message shapes (Message, MessageView) spell key, value, headers and timestamp alike.
template <typename M>
size_t encode_messages(int64_t base_offset, std::span<const M> messages, std::string* out) {
  const size_t start = out->size();
  const int64_t base_timestamp = messages.empty() ? 0 : messages[0].timestamp;
  int64_t max_timestamp = base_timestamp;
  for (const auto& m : messages) max_timestamp = std::max(max_timestamp, m.timestamp);

  put_be(out, static_cast<uint64_t>(base_offset), 8);
  put_be(out, 0, 4);                     // batchLength, patched below
  put_be(out, 0, 4);                     // partitionLeaderEpoch
  out->push_back(2);                     // magic
  put_be(out, 0, 4);                     // crc, patched below
  put_be(out, 0, 2);                     // attributes: no compression, CreateTime
  put_be(out, messages.empty() ? 0 : messages.size() - 1, 4);  // lastOffsetDelta
  put_be(out, static_cast<uint64_t>(base_timestamp), 8);
  put_be(out, static_cast<uint64_t>(max_timestamp), 8);
  put_be(out, static_cast<uint64_t>(-1), 8);  // producerId
  put_be(out, static_cast<uint64_t>(-1), 2);  // producerEpoch
  put_be(out, static_cast<uint64_t>(-1), 4);  // baseSequence
  put_be(out, messages.size(), 4);

  // Sizes first, so that the batch is written into one allocation.
  std::vector<size_t> bodies(messages.size());
  size_t total = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const M& m = messages[i];
    size_t body = 1 + varlong_size(wrapping_sub(m.timestamp, base_timestamp)) +
                  varlong_size(static_cast<int64_t>(i)) +
                  (m.key ? bytes_size(*m.key) : varlong_size(-1)) + bytes_size(m.value) +
                  varlong_size(static_cast<int64_t>(m.headers.size()));
    for (const auto& [name, value] : m.headers) body += bytes_size(name) + bytes_size(value);
    bodies[i] = body;
    total += varlong_size(static_cast<int64_t>(body)) + body;
  }
  out->reserve(out->size() + total);
  for (size_t i = 0; i < messages.size(); ++i) {
    const M& m = messages[i];
    put_varlong(out, static_cast<int64_t>(bodies[i]));
    out->push_back(0);  // record attributes
    put_varlong(out, wrapping_sub(m.timestamp, base_timestamp));
    put_varlong(out, static_cast<int64_t>(i));
    if (m.key) {
      put_bytes(out, *m.key);
    } else {
      put_varlong(out, -1);
    }
    put_bytes(out, m.value);
    put_varlong(out, static_cast<int64_t>(m.headers.size()));
    for (const auto& [name, value] : m.headers) {
      put_bytes(out, name);
      put_bytes(out, value);
    }
  }
  const size_t size = out->size() - start;
  patch_be(out, start + 8, size - kBatchLogOverhead, 4);
  const uint32_t crc = crc32c(0, out->data() + start + kAttributesOffset, size - kAttributesOffset);
  patch_be(out, start + kCrcOffset, crc, 4);
  return size;
}

}  // namespace

size_t encode_batch(int64_t base_offset, std::span<const Message> messages, std::string* out) {
  return encode_messages(base_offset, messages, out);
}

size_t encode_batch(int64_t base_offset, std::span<const MessageView> messages, std::string* out) {
  return encode_messages(base_offset, messages, out);
}

Result<BatchHeader> parse_batch_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kBatchHeaderSize) return corrupt("truncated batch header");
  const uint8_t* p = bytes.data();
  BatchHeader h;
  h.base_offset = static_cast<int64_t>(get_be(p, 8));
  h.batch_length = static_cast<int32_t>(get_be(p + 8, 4));
  if (p[16] != 2) return corrupt("magic " + std::to_string(p[16]) + ", expected 2");
  h.crc = static_cast<uint32_t>(get_be(p + kCrcOffset, 4));
  h.last_offset_delta = static_cast<int32_t>(get_be(p + 23, 4));
  h.base_timestamp = static_cast<int64_t>(get_be(p + 27, 8));
  h.max_timestamp = static_cast<int64_t>(get_be(p + 35, 8));
  h.record_count = static_cast<int32_t>(get_be(p + 57, 4));
  h.attributes = static_cast<int16_t>(get_be(p + kAttributesOffset, 2));
  h.producer_id = static_cast<int64_t>(get_be(p + 43, 8));
  h.producer_epoch = static_cast<int16_t>(get_be(p + 51, 2));
  h.base_sequence = static_cast<int32_t>(get_be(p + 53, 4));
  if (h.base_offset < 0) return corrupt("negative base offset");
  if (h.batch_length < static_cast<int32_t>(kBatchHeaderSize - kBatchLogOverhead)) {
    return corrupt("batch length " + std::to_string(h.batch_length) + " shorter than its header");
  }
  if (h.record_count < 0 || h.last_offset_delta < 0 ||
      h.last_offset_delta < h.record_count - 1) {
    return corrupt("record count and offset delta disagree");
  }
  // next_offset() must not overflow.
  if (h.base_offset > std::numeric_limits<int64_t>::max() - 1 - h.last_offset_delta) {
    return corrupt("offsets past the largest offset");
  }
  return h;
}

Status compress_batch(std::string* batch, Codec codec) {
  if (codec == Codec::kNone) return Status::ok();
  if (batch->size() < kBatchHeaderSize) return invalid_argument("compress_batch: not a batch");
  auto records = compress(codec, std::string_view(*batch).substr(kBatchHeaderSize));
  if (!records.is_ok()) return records.status();
  batch->resize(kBatchHeaderSize);
  batch->append(*records);
  patch_be(batch, 8, batch->size() - kBatchLogOverhead, 4);
  const uint16_t attributes = static_cast<uint16_t>(
      ((static_cast<uint8_t>((*batch)[kAttributesOffset]) << 8) |
       static_cast<uint8_t>((*batch)[kAttributesOffset + 1])) & ~0x7);
  patch_be(batch, kAttributesOffset, attributes | static_cast<uint16_t>(codec), 2);
  patch_be(batch, kCrcOffset,
           crc32c(0, batch->data() + kAttributesOffset, batch->size() - kAttributesOffset), 4);
  return Status::ok();
}

bool batch_crc_ok(std::span<const uint8_t> batch) {
  if (batch.size() < kBatchHeaderSize) return false;
  uint32_t stored = static_cast<uint32_t>(get_be(batch.data() + kCrcOffset, 4));
  return crc32c(0, batch.data() + kAttributesOffset, batch.size() - kAttributesOffset) == stored;
}

Status decode_batch(std::span<const uint8_t> batch, std::vector<Record>* out) {
  auto header = parse_batch_header(batch);
  if (!header.is_ok()) return header.status();
  if (header->size() != batch.size()) return corrupt("batch length disagrees with its size");
  if (!batch_crc_ok(batch)) return corrupt("CRC mismatch");
  std::span<const uint8_t> records = batch.subspan(kBatchHeaderSize);
  std::string decompressed;
  if (batch_codec(*header) != 0) {
    auto plain = decompress(batch_codec(*header), records, kMaxDecompressedBytes);
    if (!plain.is_ok()) return corrupt(plain.status().message());
    decompressed = std::move(*plain);
    records = {reinterpret_cast<const uint8_t*>(decompressed.data()), decompressed.size()};
  }
  const uint8_t* const records_end = records.data() + records.size();
  Reader r(records.data(), records_end);
  for (int32_t i = 0; i < header->record_count; ++i) {
    int64_t length;
    if (!r.varlong(&length)) break;
    if (length < 0 || static_cast<uint64_t>(length) > r.remaining()) {
      r.fail("record length past the end of the batch");
      break;
    }
    const uint8_t* record_end = r.position() + length;
    Reader rec(r.position(), record_end);
    Record record;
    uint8_t attributes = 0;
    int64_t timestamp_delta = 0;
    int32_t offset_delta = 0;
    bool key_null = false;
    std::string key;
    int32_t header_count = 0;
    if (rec.byte(&attributes) && rec.varlong(&timestamp_delta) && rec.varint(&offset_delta) &&
        rec.bytes(&key, &key_null, "key") &&
        rec.bytes(&record.message.value, nullptr, "value") && rec.varint(&header_count)) {
      if (offset_delta < 0 || offset_delta > header->last_offset_delta) {
        rec.fail("offset delta outside the batch");
      } else if (header_count < 0 || static_cast<size_t>(header_count) > rec.remaining() / 2) {
        rec.fail("header count exceeds the record");
      }
      for (int32_t h = 0; rec.ok() && h < header_count; ++h) {
        Header hd;
        if (rec.bytes(&hd.first, nullptr, "header name") &&
            rec.bytes(&hd.second, nullptr, "header value")) {
          record.message.headers.push_back(std::move(hd));
        }
      }
      if (rec.ok() && rec.remaining() != 0) rec.fail("trailing bytes in a record");
    }
    if (!rec.ok()) return corrupt("record " + std::to_string(i) + ": " + rec.error());
    if (!key_null) record.message.key = std::move(key);  // any bytes, as Kafka's
    record.offset = header->base_offset + offset_delta;
    record.message.timestamp = wrapping_add(header->base_timestamp, timestamp_delta);
    out->push_back(std::move(record));
    r = Reader(record_end, records_end);
  }
  if (!r.ok()) return corrupt(r.error());
  if (r.remaining() != 0) return corrupt("trailing bytes after the last record");
  return Status::ok();
}

}  // namespace wasmq::storage
