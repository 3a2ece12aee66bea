#include "cli/toml_text.h"

#include <cstdint>
#include <cstdio>

namespace wasmq::cli {
namespace {

// Length of the UTF-8 sequence at text[i] and its code point, or 0 when it is not valid UTF-8
// (truncated, overlong, a surrogate or above U+10FFFF).
size_t decode_utf8(std::string_view text, size_t i, char32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  size_t length = 0;
  char32_t c = 0;
  char32_t min = 0;
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, c = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, c = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, c = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    c = (c << 6) | (byte(i + k) & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *code_point = c;
  return length;
}

bool is_forbidden_control(char32_t c) {
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F;
}

std::string code_point_name(char32_t c) {
  char name[16];
  std::snprintf(name, sizeof name, "U+%04X", static_cast<unsigned>(c));
  return name;
}

enum class Context { kBare, kComment, kBasic, kLiteral, kMultiLineBasic, kMultiLineLiteral };

bool is_bare_key_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Whether the table header that starts at text[i] ("[" or "[[") has, after its blanks, what
// toml++ reads as the start of a key: a bare key character, a quote, or "]".
bool header_starts_with_a_key(std::string_view text, size_t i) {
  ++i;
  if (i < text.size() && text[i] == '[') ++i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i == text.size()) return true;  // the parser reports the end of the input itself
  const char c = text[i];
  const auto byte = static_cast<uint8_t>(c);
  if ((byte < 0x20 && c != '\n' && c != '\r') || byte >= 0x7F) {
    return true;  // a control or non-ASCII character: refused with its own message
  }
  return is_bare_key_character(c) || c == '"' || c == '\'' || c == ']';
}

}  // namespace

std::optional<TomlTextProblem> check_toml_text(std::string_view text) {
  Context context = Context::kBare;
  size_t line = 1;
  size_t column = 1;
  bool escaped = false;           // in a basic string, the previous character was a backslash
  bool line_ending_blank = false;  // in a """ string, after a line-ending backslash's line feed
  size_t depth = 0;                // [ and { open in values (arrays, inline tables)
  bool line_start = true;          // only blanks since the last line feed, outside strings
  auto problem = [&](std::string what) {
    return TomlTextProblem{line, column, std::move(what)};
  };
  auto starts = [&](size_t i, std::string_view s) { return text.substr(i, s.size()) == s; };

  for (size_t i = 0; i < text.size();) {
    char32_t c = 0;
    const size_t length = decode_utf8(text, i, &c);
    if (length == 0) return problem("the text is not valid UTF-8");
    if (is_forbidden_control(c)) {
      return problem("control character " + code_point_name(c) + " is not allowed");
    }
    const bool ascii = c < 0x80;
    size_t advance = length;
    const bool was_line_start = line_start;
    line_start = false;
    switch (context) {
      case Context::kBare:
        if (!ascii) {
          return problem("character " + code_point_name(c) +
                         " is only allowed inside a string or a comment");
        }
        if (c == '[' && was_line_start && depth == 0 && !header_starts_with_a_key(text, i)) {
          return problem("table header: expected a key after [");
        }
        if (c == '[' || c == '{') {
          ++depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
          --depth;
        }
        if (c == '#') {
          context = Context::kComment;
        } else if (starts(i, "\"\"\"")) {
          context = Context::kMultiLineBasic, advance = 3;
        } else if (c == '"') {
          context = Context::kBasic;
        } else if (starts(i, "'''")) {
          context = Context::kMultiLineLiteral, advance = 3;
        } else if (c == '\'') {
          context = Context::kLiteral;
        }
        break;
      case Context::kComment:
        if (c == '\n') context = Context::kBare;
        break;
      case Context::kBasic:
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"' || c == '\n') {
          context = Context::kBare;  // a line feed ends it as an error the parser reports
        }
        break;
      case Context::kLiteral:
        if (c == '\'' || c == '\n') context = Context::kBare;
        break;
      case Context::kMultiLineBasic:
        if (line_ending_blank) {
          if (c == ' ' || c == '\t' || c == '\n' || c == '\r') break;
          line_ending_blank = false;
          if (!ascii) {
            return problem("character " + code_point_name(c) +
                           " right after a line-ending backslash is not supported; write it "
                           "as an escape (\\uXXXX)");
          }
        }
        if (escaped) {
          escaped = false;
          if (!ascii) {  // toml++ asks whether it is whitespace (undefined behaviour in 3.3.0)
            return problem("character " + code_point_name(c) + " after a backslash is not an escape");
          }
          if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            line_ending_blank = true;  // "\" then blanks to the end of the line
            break;
          }
        } else if (c == '\\') {
          escaped = true;
        } else if (starts(i, "\"\"\"")) {
          context = Context::kBare, advance = 3;
          while (advance < 5 && i + advance < text.size() && text[i + advance] == '"') ++advance;
        }
        break;
      case Context::kMultiLineLiteral:
        if (starts(i, "'''")) {
          context = Context::kBare, advance = 3;
          while (advance < 5 && i + advance < text.size() && text[i + advance] == '\'') ++advance;
        }
        break;
    }
    if (context == Context::kBare || context == Context::kComment) {
      line_start = c == '\n' || ((c == ' ' || c == '\t' || c == '\r') && was_line_start);
    }
    for (size_t k = 0; k < advance;) {
      if (text[i + k] == '\n') {
        ++line, column = 1;
      } else if ((static_cast<uint8_t>(text[i + k]) & 0xC0) != 0x80) {
        ++column;
      }
      ++k;
    }
    i += advance;
  }
  return std::nullopt;
}

}  // namespace wasmq::cli
