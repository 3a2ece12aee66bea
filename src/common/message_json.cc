#include "common/message_json.h"

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/base64.h"
#include "common/utf8.h"

namespace wasmq {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rfc3339_ms(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return text;
}

Status message_from_json(const boost::json::value& json, int64_t default_timestamp, Message* out) {
  if (!json.is_object()) return invalid_argument("must be a JSON object");
  const auto& obj = json.get_object();
  *out = Message{};
  out->timestamp = default_timestamp;
  bool has_value = false;
  for (const auto& [name, v] : obj) {
    if (name == "key") {
      if (v.is_null()) continue;
      if (!v.is_string()) return field_error("key", "must be a string or null");
      out->key = std::string(v.get_string());
    } else if (name == "value") {
      if (!v.is_string())
        return field_error("value", "must be a string (use value_base64 for binary data)");
      if (has_value) return field_error("value", "give either value or value_base64, not both");
      out->value = std::string(v.get_string());
      has_value = true;
    } else if (name == "value_base64") {
      if (!v.is_string()) return field_error("value_base64", "must be a string");
      if (has_value)
        return field_error("value_base64", "give either value or value_base64, not both");
      auto decoded = base64_decode(v.get_string());
      if (!decoded) return field_error("value_base64", "not valid base64");
      out->value = std::move(*decoded);
      has_value = true;
    } else if (name == "headers") {
      if (v.is_null()) continue;
      if (!v.is_object()) return field_error("headers", "must be an object of strings");
      const auto& headers = v.get_object();
      // Refused before anything is copied: the object's size bounds the distinct names.
      if (headers.size() > kMaxHeaders) {
        return field_error("headers", std::to_string(headers.size()) +
                                " headers exceed the limit of " + std::to_string(kMaxHeaders) +
                                " per message");
      }
      HeaderSet set;
      set.reserve(headers.size());
      for (const auto& [hname, hvalue] : headers) {
        if (!hvalue.is_string()) {
          return field_error("headers." + std::string(hname), "must be a string");
        }
        if (Status s = set.add(std::string(hname), std::string(hvalue.get_string())); !s.is_ok()) {
          return field_error("headers", s.message());
        }
      }
      out->headers = set.release();
    } else if (name == "timestamp") {
      if (v.is_null()) continue;
      if (v.is_int64() && v.get_int64() == kTimestampNow) {
        out->timestamp = default_timestamp;
      } else if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= kMaxTimestampMs) {
        out->timestamp = v.get_int64();
      } else if (v.is_int64() || v.is_uint64()) {
        return field_error("timestamp", "must be from 0 to " + std::to_string(kMaxTimestampMs) +
                                " (9999-12-31T23:59:59.999Z) in milliseconds since the epoch, "
                                "or -1 for the time of the request");
      } else {
        return field_error("timestamp", "must be an integer (milliseconds since the epoch)");
      }
    } else if (name == "partition") {
      if (!v.is_null() && !v.is_int64()) return field_error("partition", "must be an integer");
    } else {
      return field_error(std::string_view(name.data(), name.size()), "unknown field");
    }
  }
  if (!has_value) return field_error("value", "missing (give value or value_base64)");
  return Status::ok();
}

boost::json::object message_to_json(const Message& m) {
  boost::json::object obj;
  obj["key"] = m.key ? boost::json::value(*m.key) : boost::json::value(nullptr);
  if (is_valid_utf8(m.value)) {
    obj["value"] = m.value;
  } else {
    obj["value_base64"] = base64_encode(m.value);
  }
  boost::json::object headers;
  for (const auto& [name, value] : m.headers) headers[name] = value;
  obj["headers"] = std::move(headers);
  obj["timestamp"] = m.timestamp;
  return obj;
}

}  // namespace wasmq
