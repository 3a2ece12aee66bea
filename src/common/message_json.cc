#include "common/message_json.h"

#include <algorithm>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/base64.h"
#include "common/utf8.h"

namespace wasmq {

namespace {
// Header objects up to this size are read without a HeaderSet.
constexpr size_t kFewHeaders = 16;
}  // namespace

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
      if (!v.is_string()) return invalid_argument("key: must be a string or null");
      out->key = std::string(v.get_string());
    } else if (name == "value") {
      if (!v.is_string())
        return invalid_argument("value: must be a string (use value_base64 for binary data)");
      if (has_value) return invalid_argument("value: give either value or value_base64, not both");
      out->value = std::string(v.get_string());
      has_value = true;
    } else if (name == "value_base64") {
      if (!v.is_string()) return invalid_argument("value_base64: must be a string");
      if (has_value)
        return invalid_argument("value_base64: give either value or value_base64, not both");
      auto decoded = base64_decode(v.get_string());
      if (!decoded) return invalid_argument("value_base64: not valid base64");
      out->value = std::move(*decoded);
      has_value = true;
    } else if (name == "headers") {
      if (v.is_null()) continue;
      if (!v.is_object()) return invalid_argument("headers: must be an object of strings");
      const auto& headers = v.get_object();
      // Refused before anything is copied: the object's size bounds the distinct names.
      if (headers.size() > kMaxHeaders) {
        return invalid_argument("headers: " + std::to_string(headers.size()) +
                                " headers exceed the limit of " + std::to_string(kMaxHeaders) +
                                " per message");
      }
      for (const auto& [hname, hvalue] : headers) {
        if (!hvalue.is_string()) {
          return invalid_argument("headers." + std::string(hname) + ": must be a string");
        }
      }
      if (headers.size() <= kFewHeaders) {
        // The usual few: straight into the message, duplicates found by a scan (a HeaderSet's
        // index would cost more than it saves; the bytes bound is the same).
        out->headers.clear();
        out->headers.reserve(headers.size());
        size_t bytes = 0;
        for (const auto& entry : headers) {
          const std::string_view hname = entry.key();
          const std::string_view value = entry.value().get_string();
          auto same = std::find_if(out->headers.begin(), out->headers.end(),
                                   [&](const Header& h) { return h.first == hname; });
          bytes += value.size() + (same == out->headers.end() ? hname.size() : 0) -
                   (same == out->headers.end() ? 0 : same->second.size());
          if (bytes > kMaxHeaderBytes) {
            return invalid_argument("headers: headers of " + std::to_string(bytes) +
                                    " bytes exceed the limit of " +
                                    std::to_string(kMaxHeaderBytes) + " per message");
          }
          if (same != out->headers.end()) {
            same->second.assign(value);
          } else {
            out->headers.emplace_back(std::string(hname), std::string(value));
          }
        }
      } else {
        HeaderSet set;
        for (const auto& [hname, hvalue] : headers) {
          if (Status s = set.add(std::string(hname), std::string(hvalue.get_string()));
              !s.is_ok()) {
            return s.with_context("headers");
          }
        }
        out->headers = set.release();
      }
    } else if (name == "timestamp") {
      if (v.is_null()) continue;
      if (v.is_int64() && v.get_int64() == kTimestampNow) {
        out->timestamp = default_timestamp;
      } else if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= kMaxTimestampMs) {
        out->timestamp = v.get_int64();
      } else if (v.is_int64() || v.is_uint64()) {
        return invalid_argument("timestamp: must be from 0 to " + std::to_string(kMaxTimestampMs) +
                                " (9999-12-31T23:59:59.999Z) in milliseconds since the epoch, "
                                "or -1 for the time of the request");
      } else {
        return invalid_argument("timestamp: must be an integer (milliseconds since the epoch)");
      }
    } else if (name == "partition") {
      if (!v.is_null() && !v.is_int64()) return invalid_argument("partition: must be an integer");
    } else {
      return invalid_argument(std::string(name) + ": unknown field");
    }
  }
  if (!has_value) return invalid_argument("value: missing (give value or value_base64)");
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
