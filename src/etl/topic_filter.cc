// Topic filters (match.h's TopicMatcher): compiled once per configuration, matched per topic.
#include <re2/re2.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "etl/match.h"
#include "etl/match_regex.h"

namespace wasmq::etl {
namespace {

// ASCII-only case folding: pipelines.md folds ASCII case only, so UTF-8 bytes pass unchanged.
inline char fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

std::string fold_all(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = fold(c);
  return out;
}

// `folded` is already folded; `text` is folded character by character.
bool equals_folded(std::string_view text, std::string_view folded) {
  if (text.size() != folded.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (fold(text[i]) != folded[i]) return false;
  }
  return true;
}

bool contains_folded(std::string_view text, std::string_view folded) {
  if (folded.empty()) return true;
  if (folded.size() > text.size()) return false;
  const size_t last = text.size() - folded.size();
  for (size_t start = 0; start <= last; ++start) {
    if (fold(text[start]) != folded[0]) continue;
    if (equals_folded(text.substr(start, folded.size()), folded)) return true;
  }
  return false;
}

// Glob over the whole text: `*` any run of characters, `?` exactly one. Iterative, remembering
// only the last `*` (a later star subsumes the earlier ones), so the worst case is
// O(|text| * |pattern|) with no recursion. `pattern` is folded when `fold_text`.
bool glob_matches(std::string_view pattern, std::string_view text, bool fold_text) {
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;
  size_t star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (p < pattern.size() &&
               (pattern[p] == '?' || pattern[p] == (fold_text ? fold(text[t]) : text[t]))) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Runs of `*` match the same as one `*`; collapsing them keeps the matcher's backtracking short.
std::string collapse_stars(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size());
  for (char c : pattern) {
    if (c == '*' && !out.empty() && out.back() == '*') continue;
    out.push_back(c);
  }
  return out;
}

}  // namespace

struct TopicMatcher::Compiled {
  FilterType type = FilterType::kExact;
  bool fold = false;  // !case_sensitive: `pattern` is folded, the topic is folded per char
  bool negate = false;
  bool every_topic = false;  // Exact "*"
  std::string pattern;
  std::unique_ptr<RE2> regex;

  bool own_result(std::string_view topic) const {
    switch (type) {
      case FilterType::kExact:
        if (every_topic) return true;
        return fold ? equals_folded(topic, pattern) : topic == pattern;
      case FilterType::kPrefix:
        if (topic.size() < pattern.size()) return false;
        return fold ? equals_folded(topic.substr(0, pattern.size()), pattern)
                    : topic.starts_with(pattern);
      case FilterType::kSuffix:
        if (topic.size() < pattern.size()) return false;
        return fold ? equals_folded(topic.substr(topic.size() - pattern.size()), pattern)
                    : topic.ends_with(pattern);
      case FilterType::kContains:
        return fold ? contains_folded(topic, pattern)
                    : topic.find(pattern) != std::string_view::npos;
      case FilterType::kWildcard:
        return glob_matches(pattern, topic, fold);
      case FilterType::kRegex:
        return match_detail::regex_search(topic, *regex);
    }
    return false;
  }
};

TopicMatcher::TopicMatcher() = default;
TopicMatcher::~TopicMatcher() = default;
TopicMatcher::TopicMatcher(TopicMatcher&&) noexcept = default;
TopicMatcher& TopicMatcher::operator=(TopicMatcher&&) noexcept = default;

Result<TopicMatcher> TopicMatcher::compile(const std::vector<TopicFilterSpec>& filters) {
  TopicMatcher matcher;
  matcher.filters_.reserve(filters.size());
  for (size_t i = 0; i < filters.size(); ++i) {
    const TopicFilterSpec& spec = filters[i];
    auto compiled = std::make_unique<Compiled>();
    compiled->type = spec.filter_type;
    compiled->negate = spec.negate;
    if (spec.filter_type == FilterType::kRegex) {
      std::string error;
      compiled->regex = match_detail::compile_regex(spec.pattern, spec.case_sensitive, &error);
      if (!compiled->regex) {
        return invalid_argument("topic_filters[" + std::to_string(i) +
                                "].pattern: invalid regex: " + error);
      }
    } else {
      compiled->fold = !spec.case_sensitive;
      compiled->every_topic = spec.filter_type == FilterType::kExact && spec.pattern == "*";
      std::string pattern =
          spec.filter_type == FilterType::kWildcard ? collapse_stars(spec.pattern) : spec.pattern;
      compiled->pattern = compiled->fold ? fold_all(pattern) : std::move(pattern);
    }
    matcher.filters_.push_back(std::move(compiled));
  }
  return matcher;
}

int TopicMatcher::matching_filter(std::string_view topic) const {
  if (filters_.empty()) return kEveryTopic;
  for (size_t i = 0; i < filters_.size(); ++i) {
    const Compiled& filter = *filters_[i];
    if (filter.own_result(topic) != filter.negate) return static_cast<int>(i);
  }
  return kNoMatch;
}

size_t TopicMatcher::size() const { return filters_.size(); }

bool TopicMatcher::filter_matches(size_t i, std::string_view topic) const {
  const Compiled& filter = *filters_.at(i);
  return filter.own_result(topic) != filter.negate;
}

FilterType TopicMatcher::filter_type(size_t i) const { return filters_.at(i)->type; }

}  // namespace wasmq::etl
