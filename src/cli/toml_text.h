// A check of configuration text before the TOML parser sees it.
//
// Debian's toml++ 3.3.0 reaches __builtin_unreachable or a failed assumption (undefined
// behaviour, in practice anything from a crash to a wrong parse) on some invalid documents: a
// control character or a non-ASCII character where a key or whitespace is expected ("[\x01]",
// "[é]"), a table header without a key ("[?x]"), and a non-ASCII character after a backslash
// or a line-ending backslash in a multi-line basic string (toml++ issues #190 and #295, fixed
// upstream after 3.3.0). check_toml_text refuses exactly those inputs first, each of which
// (except the last) is invalid TOML 1.0 anyway:
//   - bytes that are not UTF-8;
//   - control characters other than tab, line feed and carriage return, anywhere (TOML 1.0
//     allows them in no string and no comment);
//   - non-ASCII characters outside strings and comments (bare keys and whitespace are ASCII);
//   - a table header ("[" first on a line, outside values) whose key does not start right;
//   - in a """ string, a non-ASCII character right after a backslash (not an escape), or as the
//     first non-blank character after a line-ending backslash (valid TOML, refused here: write
//     it as \uXXXX).
// Pure function on text; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wasmq::cli {

struct TomlTextProblem {
  size_t line = 0;    // 1-based
  size_t column = 0;  // 1-based, in characters
  std::string what;   // e.g. "control character U+0001 is not allowed"
};

// The first problem in `text`, or nothing when the TOML parser may be given it.
std::optional<TomlTextProblem> check_toml_text(std::string_view text);

}  // namespace wasmq::cli
