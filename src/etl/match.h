// Which modules run on a message: a module's topic filters, compiled once per configuration
// (pipelines.md, "Topic filters"), and its conditional rules, compiled once and evaluated per
// message (pipelines.md, "Conditional rules"). PayloadField rules read the payload with
// simdjson's On-Demand API: no DOM is built.
//
// Threads: compiled objects are immutable; matches()/holds() may be called from any number of
// threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "etl/pipeline.h"

namespace wasmq::etl {

// One module's topic filters: the topic matches when any filter matches (OR); no filters match
// every topic. `negate` inverts one filter's own result before the OR.
class TopicMatcher {
 public:
  // Compiles the filters; kInvalidArgument naming "topic_filters[i].pattern" when a Regex
  // pattern is not valid RE2.
  static Result<TopicMatcher> compile(const std::vector<TopicFilterSpec>& filters);

  TopicMatcher();
  ~TopicMatcher();
  TopicMatcher(TopicMatcher&&) noexcept;
  TopicMatcher& operator=(TopicMatcher&&) noexcept;

  bool matches(std::string_view topic) const { return matching_filter(topic) != kNoMatch; }

  // The index of the first filter that matched (for traces); kEveryTopic when there are no
  // filters; kNoMatch when none matched.
  static constexpr int kNoMatch = -1;
  static constexpr int kEveryTopic = -2;
  int matching_filter(std::string_view topic) const;

  size_t size() const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> filters_;
};

// One module's conditional rules: all must hold (AND); no rules always hold.
class RuleSet {
 public:
  // Compiles the rules; kInvalidArgument naming "conditional_rules[i].<field>" for an invalid
  // RE2 pattern (Matches), a field path outside the JSONPath subset, or a value of the wrong
  // type for the operator.
  static Result<RuleSet> compile(const std::vector<ConditionalRuleSpec>& rules);

  RuleSet();
  ~RuleSet();
  RuleSet(RuleSet&&) noexcept;
  RuleSet& operator=(RuleSet&&) noexcept;

  // True when every rule holds for `message`; `now_ms` is the time MessageAge compares against.
  bool holds(const Message& message, int64_t now_ms) const { return first_failing(message, now_ms) < 0; }

  // The index of the first rule that does not hold, or -1 when all hold (for traces).
  int first_failing(const Message& message, int64_t now_ms) const;

  size_t size() const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> rules_;
};

// The JSONPath subset of PayloadField rules: "$" followed by any of ".name", "[N]",
// "['name']" / "[\"name\"]". One step of a parsed path.
struct PathStep {
  bool is_index = false;
  std::string name;  // object key, when !is_index
  uint64_t index = 0;
};

// Parses a field path; kInvalidArgument saying where it departs from the subset.
Result<std::vector<PathStep>> parse_json_path(std::string_view path);

}  // namespace wasmq::etl
