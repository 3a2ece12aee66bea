// Internal to match.h's matchers (topic_filter.cc, rules.cc): the RE2 compile and search that
// Regex topic filters and Matches rules share.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>
#include <string_view>

namespace wasmq::etl::match_detail {

inline std::unique_ptr<RE2> compile_regex(std::string_view pattern, bool case_sensitive,
                                          std::string* error) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(case_sensitive);
  auto regex = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!regex->ok()) {
    *error = regex->error();
    return nullptr;
  }
  return regex;
}

inline bool regex_search(std::string_view text, const RE2& regex) {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), regex);
}

}  // namespace wasmq::etl::match_detail
