// The JSON shape of a message in the APIs (http-api.md, produce and consume):
// {"key": "..." | "key_base64": "...", "value": "..." | "value_base64": "...",
//  "headers": {...}, "headers_base64": {...}, "timestamp": N}.
// Bytes that are not UTF-8 (Kafka clients may produce binary keys and header values) travel as
// base64 under the *_base64 names, so that every reply is valid JSON and every byte comes back.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"

namespace wasmq {

// Timestamps a message may carry: 0 (the epoch) to the last millisecond of year 9999, or
// kTimestampNow (Kafka's -1, "no timestamp"), which stands for the time of the request.
inline constexpr int64_t kMaxTimestampMs = 253'402'300'799'999;
inline constexpr int64_t kTimestampNow = -1;

// Reads a message object. `key`, `headers` and `timestamp` are optional (timestamp defaults
// to `default_timestamp`, as does -1); exactly one of `value` (UTF-8 string) and `value_base64`
// is needed; at most one of `key` and `key_base64`; `headers_base64` holds header values in
// base64 (with `headers`, a name in both keeps the later one). `partition` is accepted and ignored here. Any other field, a field of the wrong
// type, a timestamp out of range, or headers beyond kMaxHeaders / kMaxHeaderBytes (a repeated
// header name keeps its last value) is an error whose message starts with the field
// ("timestamp: ...", "headers.h1: ...", "headers: ..."); a JSON value that is not an object gives
// "must be a JSON object".
Status message_from_json(const boost::json::value& json, int64_t default_timestamp, Message* out);

// The messages of one request read as views into its JSON document: nothing is copied but a
// `*_base64` field, decoded into `decoded`. Valid while the document and this object live.
struct MessageViews {
  std::vector<MessageView> messages;
  std::vector<HeaderView> headers;  // every message's, in order
  std::deque<std::string> decoded;  // decoded key_base64, value_base64 and headers_base64 values

  // Reads one more message object, as message_from_json does (same rules, same errors).
  Status add(const boost::json::value& json, int64_t default_timestamp);
  // Points every message's headers into `headers`; call once all are added.
  void finish();

 private:
  std::vector<std::pair<size_t, size_t>> ranges_;  // per message: first header, count
};

// Writes a message object: a key or value that is not valid UTF-8 as `key_base64` /
// `value_base64`, a header value that is not in `headers_base64` (a header name that is not
// UTF-8, which no ingest path admits any more, goes there as "base64:<name in base64>").
boost::json::object message_to_json(const Message& message);

// Milliseconds since the Unix epoch, now.
int64_t now_ms();

// `ms` since the epoch as RFC 3339 UTC with milliseconds: "2026-12-01T08:27:16.941Z".
std::string rfc3339_ms(int64_t ms);

}  // namespace wasmq
