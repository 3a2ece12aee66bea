#include "common/json_text.h"

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <cmath>

namespace wasmq {
namespace json = boost::json;

namespace {

void append_double(std::string& out, double d) {
  // JSON has no infinities or NaN (Boost.JSON would write 1E999): null says "no number".
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  const size_t start = out.size();
  fmt::format_to(std::back_inserter(out), "{}", d);
  if (out.find_first_of(".e", start) == std::string::npos) out += ".0";
}

}  // namespace

void append_json_text(std::string& out, const json::value& value) {
  switch (value.kind()) {
    case json::kind::double_:
      append_double(out, value.get_double());
      return;
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& member : value.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(member.key()));
        out += ':';
        append_json_text(out, member.value());
      }
      out += '}';
      return;
    }
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value.get_array()) {
        if (!first) out += ',';
        first = false;
        append_json_text(out, element);
      }
      out += ']';
      return;
    }
    default:
      out += json::serialize(value);
      return;
  }
}

std::string json_text(const json::value& value) {
  std::string out;
  append_json_text(out, value);
  return out;
}

}  // namespace wasmq
