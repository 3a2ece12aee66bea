// JSON text for people as well as programs: Boost.JSON writes a double as "2.831E2" or "0E0";
// json_text writes it as "283.1" and "0.0" (the shortest text that reads back as the same
// double, always with a '.' or an exponent so that it reads back as a double, not an integer).
// Everything else is written as Boost.JSON writes it. The admin and data APIs answer with it.
#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace wasmq {

std::string json_text(const boost::json::value& value);

// Appends `value` to `out`.
void append_json_text(std::string& out, const boost::json::value& value);

}  // namespace wasmq
