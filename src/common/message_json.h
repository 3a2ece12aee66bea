// The JSON shape of a message in the APIs (http-api.md, produce and consume):
// {"key": "...", "value": "..." | "value_base64": "...", "headers": {...}, "timestamp": N}.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <string>

#include "common/message.h"
#include "common/status.h"

namespace wasmq {

// Reads a message object. `key`, `headers` and `timestamp` are optional (timestamp defaults
// to `default_timestamp`); exactly one of `value` (UTF-8 string) and `value_base64` is needed.
// `partition` is accepted and ignored here. Any other field, or a field of the wrong type, is an
// error whose message names the field.
Status message_from_json(const boost::json::value& json, int64_t default_timestamp, Message* out);

// Writes a message object; a value that is not valid UTF-8 is written as `value_base64`.
boost::json::object message_to_json(const Message& message);

// Milliseconds since the Unix epoch, now.
int64_t now_ms();

// `ms` since the epoch as RFC 3339 UTC with milliseconds: "2026-12-01T08:27:16.941Z".
std::string rfc3339_ms(int64_t ms);

}  // namespace wasmq
