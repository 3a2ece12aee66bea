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
#include "etl/json_path.h"
#include "etl/pipeline.h"

namespace wasmq::etl {

// One module's topic filters: the topic matches when any filter matches (OR); no filters match
// every topic. `negate` inverts one filter's own result before the OR.
// case_sensitive: false folds ASCII letters only. Wildcard patterns have no escapes (`*` and `?`
// are always special). Evaluation allocates nothing.
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

  // Filter `i` alone (negate applied), and its type: for measuring evaluation by type.
  bool filter_matches(size_t i, std::string_view topic) const;
  FilterType filter_type(size_t i) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> filters_;
};

// One module's conditional rules: all must hold (AND); no rules always hold.
//
// How a rule compares (where pipelines.md is silent):
// - Equals, NotEquals and the ordering operators compare numbers when both sides are numbers,
//   else the two texts bytewise (lexicographic). Numbers are: a JSON number in the payload, the
//   size and the age, a rule value that is a JSON number, and a header's text when all of it
//   parses as a finite double ("42", "-1.5", "1e3"; not " 42", "inf", "0x10"). A rule value
//   that is a JSON string ("42") stays a string, and so does a JSON string in the payload.
//   Numbers compare as doubles.
// - The texts: a header's value; a payload string unescaped; a payload number as written
//   ("1.50"); true/false as "true"/"false" (so a bool field Equals the bool or the string);
//   null, objects and arrays as their JSON text as written; the size and the age in decimal; a
//   rule value number in its shortest form (42, 0.5, 1e+21).
// - Contains, StartsWith, EndsWith and Matches always work on the texts. Matches is an RE2
//   search, case-sensitive unless the pattern says "(?i)".
// - A missing header, a missing field, a step of the path meeting the wrong type, or a payload
//   that is not JSON makes the rule false before negate (pipelines.md), so a negated rule holds.
//   The payload is only read as far as the path needs (simdjson On-Demand): bytes after the
//   value found are not checked. Object keys are matched as written in the payload (simdjson
//   compares raw keys): a key the payload spells with needless escapes ("\u0061") does not match.
// - MessageSize is key + value + every header name and value, in bytes; MessageAge is
//   now_ms - timestamp (saturating).
//
// Evaluation allocates nothing in steady state: PayloadField rules share one thread_local
// On-Demand parser, and a payload is copied into a thread_local padded buffer unless its string
// already has SIMDJSON_PADDING bytes of spare capacity. Stage 1 runs once per message for all of
// a set's PayloadField rules (again after a rule whose path was not found). Both buffers keep
// the size of the largest payload seen.
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
  bool holds(const Message& message, int64_t now_ms) const {
    return first_failing(message, now_ms) < 0;
  }

  // The index of the first rule that does not hold, or -1 when all hold (for traces).
  int first_failing(const Message& message, int64_t now_ms) const;

  size_t size() const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> rules_;
};

}  // namespace wasmq::etl
