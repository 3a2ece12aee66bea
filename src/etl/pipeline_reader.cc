// The pipeline parser's field readers: one JSON value or member each, checked and named by its
// path when wrong.
#include "etl/pipeline_reader.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "etl/semver.h"

namespace wasmq::etl::pipeline_detail {

bool contains(std::initializer_list<std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string shorten(std::string text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::string format_double(double number) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), number);
  return ec == std::errc() ? std::string(text, end) : json::serialize(json::value(number));
}

std::string describe(const json::value& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  if (value.is_double()) return format_double(value.get_double());
  return shorten(json::serialize(value));
}

std::string quoted(std::string_view text) { return shorten(json::serialize(json::string(text))); }

std::string member_path(const std::string& parent, std::string_view key) {
  bool plain =
      !key.empty() && key.size() <= kMaxIdLength &&
      std::all_of(key.begin(), key.end(), [](char c) { return is_id_char(c) && c != '.'; });
  if (!plain) return parent + "[" + quoted(key) + "]";
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string_view module_name_of(std::string_view module_id) {
  for (size_t dash = module_id.rfind("-v"); dash != std::string_view::npos && dash > 0;
       dash = module_id.rfind("-v", dash - 1)) {
    if (SemVer::parse(module_id.substr(dash + 2)).is_ok()) return module_id.substr(0, dash);
  }
  return module_id;
}

bool DocumentReader::fail(std::string path, std::string_view what) {
  std::string message = path.empty() ? std::string(what) : path + ": " + std::string(what);
  error_ = Status(StatusCode::kInvalidArgument, std::move(message), std::move(path));
  return false;
}

bool DocumentReader::check_members(const json::object& object, const std::string& path,
                                   std::initializer_list<std::string_view> known) {
  for (const auto& member : object) {
    if (!contains(known, member.key())) {
      return fail(member_path(path, member.key()), "unknown field");
    }
  }
  return true;
}

bool DocumentReader::required(const json::object& object, const std::string& parent,
                              std::string_view key, const json::value** value) {
  *value = object.if_contains(key);
  if (*value == nullptr) return fail(member_path(parent, key), "required");
  return true;
}

bool DocumentReader::read_object(const json::object& parent_object, const std::string& parent,
                                 std::string_view key, bool null_is_absent,
                                 const json::object** object) {
  *object = nullptr;
  const json::value* value = parent_object.if_contains(key);
  if (value == nullptr || (null_is_absent && value->is_null())) return true;
  *object = value->if_object();
  if (*object == nullptr) {
    return fail(member_path(parent, key), "expected an object, got " + describe(*value));
  }
  return true;
}

bool DocumentReader::read_array(const json::value& value, const std::string& path, size_t max_size,
                                const json::array** array) {
  *array = value.if_array();
  if (*array == nullptr) return fail(path, "expected an array, got " + describe(value));
  if ((*array)->size() > max_size) {
    return fail(path, "expected at most " + std::to_string(max_size) + " entries, got " +
                          std::to_string((*array)->size()));
  }
  return true;
}

bool DocumentReader::read_bool(const json::object& object, const std::string& parent,
                               std::string_view key, bool* out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return true;
  if (!value->is_bool()) {
    return fail(member_path(parent, key), "expected true or false, got " + describe(*value));
  }
  *out = value->get_bool();
  return true;
}

bool DocumentReader::integer_in(const json::value& value, const std::string& path, uint64_t min,
                                uint64_t max, uint64_t* out) {
  auto range = [&] {
    return min == 0 && max == std::numeric_limits<uint64_t>::max()
               ? std::string("a non-negative integer")
               : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  };
  uint64_t number = 0;
  if (value.is_uint64()) {
    number = value.get_uint64();
  } else if (value.is_int64() && value.get_int64() >= 0) {
    number = static_cast<uint64_t>(value.get_int64());
  } else {
    return fail(path, "expected " + range() + ", got " + describe(value));
  }
  if (number < min || number > max) {
    return fail(path, "expected " + range() + ", got " + describe(value));
  }
  *out = number;
  return true;
}

bool DocumentReader::read_signed(const json::object& object, const std::string& parent,
                                 std::string_view key, int64_t* out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return true;
  if (value->is_int64()) {
    *out = value->get_int64();
    return true;
  }
  if (value->is_uint64() &&
      value->get_uint64() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    *out = static_cast<int64_t>(value->get_uint64());
    return true;
  }
  return fail(member_path(parent, key), "expected an integer, got " + describe(*value));
}

bool DocumentReader::read_double(const json::object& object, const std::string& parent,
                                 std::string_view key, double min, double max, double* out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return true;
  std::string path = member_path(parent, key);
  auto expected = [&] {
    return "expected a number from " + format_double(min) + " to " + format_double(max) + ", got " +
           describe(*value);
  };
  if (!value->is_number()) return fail(path, expected());
  double number = value->to_number<double>();
  if (!std::isfinite(number) || number < min || number > max) return fail(path, expected());
  *out = number;
  return true;
}

bool DocumentReader::check_id(const std::string& id, const std::string& path,
                              std::string_view what) {
  if (id.empty() || id.size() > kMaxIdLength || !std::all_of(id.begin(), id.end(), is_id_char)) {
    return fail(path, "expected " + std::string(what) + " of 1-" + std::to_string(kMaxIdLength) +
                          " characters [A-Za-z0-9._-], got " + quoted(id));
  }
  if (id[0] == '.') {
    return fail(path,
                "expected " + std::string(what) + " not starting with '.', got " + quoted(id));
  }
  return true;
}

bool DocumentReader::read_id(const json::object& object, std::string_view key,
                             std::string_view generated_id, std::string* out) {
  if (const json::value* value = object.if_contains(key)) {
    if (!string_in(*value, std::string(key), kMaxIdLength * 4, out)) return false;
  } else if (generated_id.empty()) {
    return fail(std::string(key), "required");
  } else {
    *out = std::string(generated_id);
  }
  return check_id(*out, std::string(key), "an id");
}

bool DocumentReader::check_topic(const std::string& topic, const std::string& path) {
  if (topic.empty() || topic.size() > kMaxTopicLength ||
      !std::all_of(topic.begin(), topic.end(), is_id_char)) {
    return fail(path, "expected a topic name of 1-" + std::to_string(kMaxTopicLength) +
                          " characters [A-Za-z0-9._-], got " + quoted(topic));
  }
  return true;
}

bool DocumentReader::read_topic(const json::object& object, const std::string& parent,
                                std::string_view key, std::string* out) {
  if (!object.contains(key)) return true;
  if (!read_string(object, parent, key, kMaxTopicLength * 4, out)) return false;
  return check_topic(*out, member_path(parent, key));
}

}  // namespace wasmq::etl::pipeline_detail
