#include "storage/compression.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <memory>

namespace wasmq::storage {
namespace {

constexpr std::string_view kXerialMagic{"\x82SNAPPY\0", 8};
constexpr size_t kXerialHeader = 16;  // magic, version i32, compatible version i32
constexpr size_t kSnappyBlock = 32 << 10;

Status bad(int codec, const std::string& why) {
  return invalid_argument(codec_name(codec) + " records: " + why);
}

Status too_large(int codec, size_t max_bytes) {
  return bad(codec, "they expand past " + std::to_string(max_bytes) + " bytes");
}

Result<std::string> gunzip(std::span<const uint8_t> in, size_t max_bytes) {
  z_stream z{};
  // 15 + 32: a gzip or zlib header, detected.
  if (inflateInit2(&z, 15 + 32) != Z_OK) return bad(1, "cannot start zlib");
  std::string out;
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out.size() >= max_bytes) {
      inflateEnd(&z);
      return too_large(1, max_bytes);
    }
    const size_t before = out.size();
    out.resize(std::min(max_bytes, std::max<size_t>(before * 2, 64 << 10)));
    z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    z.avail_out = static_cast<uInt>(out.size() - before);
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      inflateEnd(&z);
      return bad(1, z.msg ? z.msg : "not a gzip stream");
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      inflateEnd(&z);
      return bad(1, "the stream is truncated");
    }
  }
  inflateEnd(&z);
  return out;
}

Result<std::string> gzip(std::string_view in) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return bad(1, "cannot start zlib");
  }
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return bad(1, "cannot compress");
  return out;
}

Status unsnappy_block(std::span<const uint8_t> in, size_t max_bytes, std::string* out) {
  size_t length = 0;
  const char* data = reinterpret_cast<const char*>(in.data());
  if (snappy_uncompressed_length(data, in.size(), &length) != SNAPPY_OK) {
    return bad(2, "not a snappy block");
  }
  if (length > max_bytes - out->size()) return too_large(2, max_bytes);
  const size_t before = out->size();
  out->resize(before + length);
  if (snappy_uncompress(data, in.size(), out->data() + before, &length) != SNAPPY_OK) {
    return bad(2, "a damaged snappy block");
  }
  return Status::ok();
}

Result<std::string> unsnappy(std::span<const uint8_t> in, size_t max_bytes) {
  std::string out;
  const bool xerial = in.size() >= kXerialHeader &&
                      std::memcmp(in.data(), kXerialMagic.data(), kXerialMagic.size()) == 0;
  if (!xerial) {
    if (Status s = unsnappy_block(in, max_bytes, &out); !s.is_ok()) return s;
    return out;
  }
  size_t at = kXerialHeader;
  while (at < in.size()) {
    if (in.size() - at < 4) return bad(2, "a truncated xerial block length");
    const uint32_t n = (uint32_t{in[at]} << 24) | (uint32_t{in[at + 1]} << 16) |
                       (uint32_t{in[at + 2]} << 8) | uint32_t{in[at + 3]};
    at += 4;
    if (n > in.size() - at) return bad(2, "a xerial block past the end");
    if (Status s = unsnappy_block(in.subspan(at, n), max_bytes, &out); !s.is_ok()) return s;
    at += n;
  }
  return out;
}

Result<std::string> snappy(std::string_view in) {
  std::string out(kXerialMagic);
  const char version[8] = {0, 0, 0, 1, 0, 0, 0, 1};
  out.append(version, 8);
  for (size_t at = 0; at < in.size(); at += kSnappyBlock) {
    const size_t n = std::min(kSnappyBlock, in.size() - at);
    size_t length = snappy_max_compressed_length(n);
    const size_t prefix = out.size();
    out.resize(prefix + 4 + length);
    if (snappy_compress(in.data() + at, n, out.data() + prefix + 4, &length) != SNAPPY_OK) {
      return bad(2, "cannot compress");
    }
    out.resize(prefix + 4 + length);
    for (int i = 0; i < 4; ++i) out[prefix + static_cast<size_t>(i)] = static_cast<char>(length >> (24 - 8 * i));
  }
  return out;
}

Result<std::string> unlz4(std::span<const uint8_t> in, size_t max_bytes) {
  LZ4F_dctx* raw = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&raw, LZ4F_VERSION))) return bad(3, "cannot start lz4");
  std::unique_ptr<LZ4F_dctx, decltype(&LZ4F_freeDecompressionContext)> ctx(raw, &LZ4F_freeDecompressionContext);
  std::string out;
  size_t at = 0;
  size_t hint = 1;
  while (at < in.size() && hint != 0) {
    if (out.size() >= max_bytes) return too_large(3, max_bytes);
    const size_t before = out.size();
    out.resize(std::min(max_bytes, std::max<size_t>(before * 2, 64 << 10)));
    size_t out_n = out.size() - before;
    size_t in_n = in.size() - at;
    hint = LZ4F_decompress(ctx.get(), out.data() + before, &out_n, in.data() + at, &in_n, nullptr);
    if (LZ4F_isError(hint)) return bad(3, LZ4F_getErrorName(hint));
    out.resize(before + out_n);
    at += in_n;
    if (in_n == 0 && out_n == 0 && out.size() < max_bytes) return bad(3, "the frame is truncated");
  }
  if (hint != 0) return bad(3, "the frame is truncated");
  if (at != in.size()) return bad(3, "bytes after the frame");
  return out;
}

Result<std::string> lz4(std::string_view in) {
  LZ4F_preferences_t prefs{};
  std::string out(LZ4F_compressFrameBound(in.size(), &prefs), '\0');
  size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) return bad(3, LZ4F_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> unzstd(std::span<const uint8_t> in, size_t max_bytes) {
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> ds(ZSTD_createDStream(), &ZSTD_freeDStream);
  if (!ds) return bad(4, "cannot start zstd");
  ZSTD_initDStream(ds.get());
  std::string out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t rc = 1;
  while (rc != 0) {
    if (out.size() >= max_bytes) return too_large(4, max_bytes);
    const size_t before = out.size();
    out.resize(std::min(max_bytes, std::max<size_t>(before * 2, 64 << 10)));
    ZSTD_outBuffer output{out.data() + before, out.size() - before, 0};
    rc = ZSTD_decompressStream(ds.get(), &output, &input);
    if (ZSTD_isError(rc)) return bad(4, ZSTD_getErrorName(rc));
    out.resize(before + output.pos);
    if (rc != 0 && input.pos == input.size && output.pos < output.size) return bad(4, "the frame is truncated");
  }
  if (input.pos != input.size) return bad(4, "bytes after the frame");
  return out;
}

Result<std::string> zstd(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  if (ZSTD_isError(n)) return bad(4, ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

}  // namespace

std::string codec_name(int codec) {
  switch (codec) {
    case 0: return "none";
    case 1: return "gzip";
    case 2: return "snappy";
    case 3: return "lz4";
    case 4: return "zstd";
  }
  return "codec " + std::to_string(codec);
}

Result<std::string> decompress(int codec, std::span<const uint8_t> in, size_t max_bytes) {
  switch (codec) {
    case 1: return gunzip(in, max_bytes);
    case 2: return unsnappy(in, max_bytes);
    case 3: return unlz4(in, max_bytes);
    case 4: return unzstd(in, max_bytes);
  }
  return invalid_argument("unknown compression codec " + std::to_string(codec));
}

Result<std::string> compress(Codec codec, std::string_view in) {
  switch (codec) {
    case Codec::kGzip: return gzip(in);
    case Codec::kSnappy: return snappy(in);
    case Codec::kLz4: return lz4(in);
    case Codec::kZstd: return zstd(in);
    case Codec::kNone: break;
  }
  return invalid_argument("compress: no codec");
}

}  // namespace wasmq::storage
