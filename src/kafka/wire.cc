#include "kafka/wire.h"

#include <limits>

namespace wasmq::kafka {

int8_t Reader::i8() {
  if (!need(1, "truncated int8")) return 0;
  return static_cast<int8_t>(bytes_[at_++]);
}

int16_t Reader::i16() {
  if (!need(2, "truncated int16")) return 0;
  uint16_t v = static_cast<uint16_t>((bytes_[at_] << 8) | bytes_[at_ + 1]);
  at_ += 2;
  return static_cast<int16_t>(v);
}

uint32_t Reader::u32() {
  if (!need(4, "truncated int32")) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | bytes_[at_ + static_cast<size_t>(i)];
  at_ += 4;
  return v;
}

int32_t Reader::i32() { return static_cast<int32_t>(u32()); }

int64_t Reader::i64() {
  if (!need(8, "truncated int64")) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | bytes_[at_ + static_cast<size_t>(i)];
  at_ += 8;
  return static_cast<int64_t>(v);
}

uint32_t Reader::uvarint() {
  uint32_t v = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (!need(1, "truncated varint")) return 0;
    uint8_t b = bytes_[at_++];
    if (shift == 28 && (b & 0xf0)) {
      fail("varint longer than 32 bits");
      return 0;
    }
    v |= static_cast<uint32_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  fail("varint longer than 32 bits");
  return 0;
}

int32_t Reader::varint() {
  uint32_t u = uvarint();
  return static_cast<int32_t>((u >> 1) ^ (~(u & 1) + 1));
}

int64_t Reader::varlong() {
  uint64_t u = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (!need(1, "truncated varlong")) return 0;
    uint8_t b = bytes_[at_++];
    if (shift == 63 && (b & 0xfe)) {
      fail("varlong longer than 64 bits");
      return 0;
    }
    u |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  fail("varlong longer than 64 bits");
  return 0;
}

std::span<const uint8_t> Reader::raw(size_t n) {
  if (!need(n, "truncated bytes")) return {};
  auto out = bytes_.subspan(at_, n);
  at_ += n;
  return out;
}

static std::string_view as_text(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::optional<std::string_view> Reader::nullable_string() {
  int16_t n = i16();
  if (!ok()) return std::string_view{};
  if (n == -1) return std::nullopt;
  if (n < 0) {
    fail("negative string length");
    return std::string_view{};
  }
  return as_text(raw(static_cast<size_t>(n)));
}

std::string_view Reader::string() {
  auto s = nullable_string();
  if (!s) {
    fail("null string where one is required");
    return {};
  }
  return *s;
}

std::optional<std::string_view> Reader::compact_nullable_string() {
  uint32_t n = uvarint();
  if (!ok()) return std::string_view{};
  if (n == 0) return std::nullopt;
  return as_text(raw(n - 1));
}

std::string_view Reader::compact_string() {
  auto s = compact_nullable_string();
  if (!s) {
    fail("null string where one is required");
    return {};
  }
  return *s;
}

std::optional<std::span<const uint8_t>> Reader::nullable_bytes() {
  int32_t n = i32();
  if (!ok()) return std::span<const uint8_t>{};
  if (n == -1) return std::nullopt;
  if (n < 0) {
    fail("negative bytes length");
    return std::span<const uint8_t>{};
  }
  return raw(static_cast<size_t>(n));
}

std::span<const uint8_t> Reader::bytes() {
  auto b = nullable_bytes();
  return b ? *b : std::span<const uint8_t>{};
}

int32_t Reader::array_length(size_t min_element_bytes) {
  int32_t n = i32();
  if (!ok() || n == -1) return 0;
  if (n < 0) {
    fail("negative array length");
    return 0;
  }
  if (static_cast<size_t>(n) > remaining() / std::max<size_t>(1, min_element_bytes)) {
    fail("array length larger than the request");
    return 0;
  }
  return n;
}

int32_t Reader::compact_array_length(size_t min_element_bytes) {
  uint32_t n = uvarint();
  if (!ok() || n == 0) return 0;
  --n;
  if (n > std::numeric_limits<int32_t>::max() ||
      n > remaining() / std::max<size_t>(1, min_element_bytes)) {
    fail("array length larger than the request");
    return 0;
  }
  return static_cast<int32_t>(n);
}

void Reader::skip_tagged_fields() {
  uint32_t count = uvarint();
  for (uint32_t i = 0; i < count && ok(); ++i) {
    uvarint();  // tag
    uint32_t size = uvarint();
    raw(size);
  }
}

void Writer::uvarint(uint32_t v) {
  while (v >= 0x80) {
    out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_->push_back(static_cast<char>(v));
}

void Writer::string(std::string_view s) {
  i16(static_cast<int16_t>(s.size()));
  out_->append(s);
}

void Writer::nullable_string(std::optional<std::string_view> s) {
  if (!s) return i16(-1);
  string(*s);
}

void Writer::compact_string(std::string_view s) {
  uvarint(static_cast<uint32_t>(s.size() + 1));
  out_->append(s);
}

void Writer::compact_nullable_string(std::optional<std::string_view> s) {
  if (!s) return uvarint(0);
  compact_string(*s);
}

void Writer::bytes(std::string_view b) {
  i32(static_cast<int32_t>(b.size()));
  out_->append(b);
}

void Writer::nullable_bytes(std::optional<std::string_view> b) {
  if (!b) return i32(-1);
  bytes(*b);
}

}  // namespace wasmq::kafka
