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

Status MessageViews::add(const boost::json::value& json, int64_t default_timestamp) {
  if (!json.is_object()) return invalid_argument("must be a JSON object");
  const auto& obj = json.get_object();
  MessageView out;
  out.timestamp = default_timestamp;
  const size_t first_header = headers.size();
  auto fail = [&](Status s) {
    headers.resize(first_header);  // nothing of a refused message stays
    return s;
  };
  bool has_value = false;
  size_t header_bytes = 0;  // of `headers` and `headers_base64` together
  for (const auto& [name, v] : obj) {
    if (name == "key") {
      if (v.is_null()) continue;
      if (!v.is_string()) return fail(field_error("key", "must be a string or null (use key_base64 for binary keys)"));
      if (out.key) return fail(field_error("key", "give either key or key_base64, not both"));
      out.key = std::string_view(v.get_string());
    } else if (name == "key_base64") {
      if (!v.is_string()) return fail(field_error("key_base64", "must be a string"));
      if (out.key) return fail(field_error("key_base64", "give either key or key_base64, not both"));
      auto bytes = base64_decode(v.get_string());
      if (!bytes) return fail(field_error("key_base64", "not valid base64"));
      out.key = std::string_view(decoded.emplace_back(std::move(*bytes)));
    } else if (name == "value") {
      if (!v.is_string())
        return fail(field_error("value", "must be a string (use value_base64 for binary data)"));
      if (has_value) return fail(field_error("value", "give either value or value_base64, not both"));
      out.value = std::string_view(v.get_string());
      has_value = true;
    } else if (name == "value_base64") {
      if (!v.is_string()) return fail(field_error("value_base64", "must be a string"));
      if (has_value)
        return fail(field_error("value_base64", "give either value or value_base64, not both"));
      auto bytes = base64_decode(v.get_string());
      if (!bytes) return fail(field_error("value_base64", "not valid base64"));
      out.value = decoded.emplace_back(std::move(*bytes));
      has_value = true;
    } else if (name == "headers" || name == "headers_base64") {
      if (v.is_null()) continue;
      const bool binary = name == "headers_base64";
      const std::string field(name.data(), name.size());
      if (!v.is_object()) return fail(field_error(field, "must be an object of strings"));
      const auto& list = v.get_object();
      // Refused before anything is read: the object's size bounds the distinct names (a JSON
      // object's names are unique: a repeated one keeps its last value).
      if (headers.size() - first_header + list.size() > kMaxHeaders) {
        return fail(field_error(field, std::to_string(headers.size() - first_header + list.size()) +
                                           " headers exceed the limit of " +
                                           std::to_string(kMaxHeaders) + " per message"));
      }
      for (const auto& [hname, hvalue] : list) {
        if (!hvalue.is_string()) {
          return fail(field_error(field + "." + std::string(hname), "must be a string"));
        }
        std::string_view value(hvalue.get_string());
        if (binary) {
          auto bytes = base64_decode(value);
          if (!bytes) return fail(field_error(field + "." + std::string(hname), "not valid base64"));
          value = decoded.emplace_back(std::move(*bytes));
        }
        header_bytes += hname.size() + value.size();
        if (header_bytes > kMaxHeaderBytes) {
          // The size so far, as HeaderSet counts it.
          return fail(field_error(field, headers_too_large(header_bytes, kMaxHeaderBytes).message()));
        }
        headers.emplace_back(std::string_view(hname), value);
      }
    } else if (name == "timestamp") {
      if (v.is_null()) continue;
      if (v.is_int64() && v.get_int64() == kTimestampNow) {
        out.timestamp = default_timestamp;
      } else if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= kMaxTimestampMs) {
        out.timestamp = v.get_int64();
      } else if (v.is_int64() || v.is_uint64()) {
        return fail(field_error("timestamp", "must be from 0 to " + std::to_string(kMaxTimestampMs) +
                                                 " (9999-12-31T23:59:59.999Z) in milliseconds "
                                                 "since the epoch, or -1 for the time of the "
                                                 "request"));
      } else {
        return fail(field_error("timestamp", "must be an integer (milliseconds since the epoch)"));
      }
    } else if (name == "partition") {
      if (!v.is_null() && !v.is_int64()) return fail(field_error("partition", "must be an integer"));
    } else {
      return fail(field_error(std::string_view(name.data(), name.size()), "unknown field"));
    }
  }
  if (!has_value) return fail(field_error("value", "missing (give value or value_base64)"));
  messages.push_back(out);
  ranges_.emplace_back(first_header, headers.size() - first_header);
  return Status::ok();
}

void MessageViews::finish() {
  for (size_t i = 0; i < messages.size(); ++i) {
    messages[i].headers = std::span<const HeaderView>(headers.data() + ranges_[i].first,
                                                      ranges_[i].second);
  }
}

Status message_from_json(const boost::json::value& json, int64_t default_timestamp, Message* out) {
  MessageViews views;
  if (Status s = views.add(json, default_timestamp); !s.is_ok()) return s;
  views.finish();
  *out = views.messages[0].to_message();
  return Status::ok();
}

boost::json::object message_to_json(const Message& m) {
  boost::json::object obj;
  if (!m.key) {
    obj["key"] = nullptr;
  } else if (is_valid_utf8(*m.key)) {
    obj["key"] = *m.key;
  } else {
    obj["key_base64"] = base64_encode(*m.key);
  }
  if (is_valid_utf8(m.value)) {
    obj["value"] = m.value;
  } else {
    obj["value_base64"] = base64_encode(m.value);
  }
  boost::json::object headers, binary;
  for (const auto& [name, value] : m.headers) {
    if (!is_valid_utf8(name)) {
      binary["base64:" + base64_encode(name)] = base64_encode(value);
    } else if (is_valid_utf8(value)) {
      headers[name] = value;
    } else {
      binary[name] = base64_encode(value);
    }
  }
  obj["headers"] = std::move(headers);
  if (!binary.empty()) obj["headers_base64"] = std::move(binary);
  obj["timestamp"] = m.timestamp;
  return obj;
}

}  // namespace wasmq
