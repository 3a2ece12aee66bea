#include "etl/match.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wasmq::etl {
namespace {

// --- Topic filters ----------------------------------------------------------------------------

TopicFilterSpec filter(FilterType type, std::string pattern, bool case_sensitive = true,
                       bool negate = false) {
  TopicFilterSpec spec;
  spec.filter_type = type;
  spec.pattern = std::move(pattern);
  spec.case_sensitive = case_sensitive;
  spec.negate = negate;
  return spec;
}

TopicMatcher compile_filters(const std::vector<TopicFilterSpec>& filters) {
  auto matcher = TopicMatcher::compile(filters);
  EXPECT_TRUE(matcher.is_ok()) << matcher.status().message();
  return matcher.is_ok() ? std::move(matcher).value() : TopicMatcher();
}

bool topic_matches(const TopicFilterSpec& spec, std::string_view topic) {
  return compile_filters({spec}).matches(topic);
}

TEST(TopicFilter, NoFiltersMatchEveryTopic) {
  TopicMatcher matcher = compile_filters({});
  EXPECT_TRUE(matcher.matches("orders"));
  EXPECT_TRUE(matcher.matches(""));
  EXPECT_EQ(matcher.matching_filter("orders"), TopicMatcher::kEveryTopic);
  EXPECT_EQ(matcher.size(), 0u);
}

TEST(TopicFilter, ExactMatchesOnlyTheWholeTopic) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "orders"), "orders"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "orders"), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "orders"), "order"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "orders"), "Orders"));
}

TEST(TopicFilter, ExactStarMatchesEveryTopic) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "*"), "orders"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "*"), "a.b.c"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "*", true, true), "orders"));
  // Only the lone star is special: "o*" is an ordinary Exact pattern.
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "o*"), "orders"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "o*"), "o*"));
}

TEST(TopicFilter, ExactCaseInsensitiveFoldsBothSides) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "Orders.EU", false), "oRDERS.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "Orders.EU", false), "orders.us"));
}

TEST(TopicFilter, CaseFoldingIsAsciiOnly) {
  EXPECT_FALSE(topic_matches(filter(FilterType::kExact, "\xc3\x89t\xc3\xa9", false),
                             "\xc3\xa9t\xc3\xa9"));  // "Été" vs "été"
  EXPECT_TRUE(topic_matches(filter(FilterType::kExact, "\xc3\xa9T", false), "\xc3\xa9t"));
}

TEST(TopicFilter, PrefixMatchesTheStart) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kPrefix, "orders."), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kPrefix, "orders."), "x.orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kPrefix, "orders."), "orders"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kPrefix, "orders."), "ORDERS.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kPrefix, "ORDERS.", false), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kPrefix, "ORDERS.", false), "order"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kPrefix, "orders.", true, true), "orders.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kPrefix, "orders.", true, true), "payments"));
}

TEST(TopicFilter, SuffixMatchesTheEnd) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kSuffix, ".dlq"), "orders.dlq"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kSuffix, ".dlq"), "orders.dlq.x"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kSuffix, ".dlq"), "dlq"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kSuffix, ".dlq"), "orders.DLQ"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kSuffix, ".DLQ", false), "orders.dlq"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kSuffix, ".DLQ", false), "orders.dlx"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kSuffix, ".dlq", true, true), "orders.dlq"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kSuffix, ".dlq", true, true), "orders"));
}

TEST(TopicFilter, ContainsMatchesAnywhere) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kContains, "eu"), "orders.eu.west"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kContains, "eu"), "eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kContains, "eu"), "orders.us"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kContains, "eu"), "orders.EU"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kContains, "Eu.W", false), "orders.EU.west"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kContains, "Eu.W", false), "orders.EU.east"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kContains, "eu", true, true), "orders.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kContains, "eu", true, true), "orders.us"));
}

TEST(TopicFilter, WildcardStarSpansDots) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "orders.*"), "orders.eu.west"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "a*z"), "a.b.c.z"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "orders.*"), "orders."));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "orders.*"), "orders"));
}

TEST(TopicFilter, WildcardQuestionMarkIsExactlyOneCharacter) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "log-?"), "log-1"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "log-?"), "log-."));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "log-?"), "log-"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "log-?"), "log-12"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "??"), "ab"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "??"), "abc"));
}

TEST(TopicFilter, WildcardLeadingAndTrailingStars) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*.eu"), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "*.eu"), "orders.eu.x"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*eu*"), "x.eu.y"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*eu*"), "eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "*eu*"), "e.u"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*"), ""));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "**"), "anything.at.all"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "a**b"), "ab"));
}

TEST(TopicFilter, WildcardMatchesTheWholeTopicOnly) {
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "orders"), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "orders"), "x.orders"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "o?ders"), "xorders"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "orders"), "orders"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, ""), "x"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, ""), ""));
}

TEST(TopicFilter, WildcardBacktracksPastAFalseStart) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*ab"), "aab"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "a*b*c"), "abxbyc"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "a*b*c"), "abxbyd"));
}

TEST(TopicFilter, WildcardWithManyStarsOnALongTopicStaysLinearIsh) {
  // Exponential for a naive recursive matcher; the iterative one finishes at once.
  const std::string topic(4000, 'a');
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "*a*a*a*a*a*a*a*a*a*a*b"), topic));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "*a*a*a*a*a*a*a*a*a*a*"), topic));
}

TEST(TopicFilter, WildcardCaseInsensitiveAndNegated) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "Orders.*.EU", false), "orders.x.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "Orders.*.EU"), "orders.x.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "Orders.*.EU", false), "orders.x.us"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kWildcard, "orders.*", true, true), "orders.a"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kWildcard, "orders.*", true, true), "payments"));
}

TEST(TopicFilter, RegexIsSearchedAnywhere) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kRegex, "eu-[0-9]+"), "orders.eu-12.x"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "eu-[0-9]+"), "orders.eu-x"));
}

TEST(TopicFilter, RegexAnchorsAreHonoured) {
  EXPECT_TRUE(topic_matches(filter(FilterType::kRegex, "^orders\\."), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "^orders\\."), "x.orders.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kRegex, "^orders$"), "orders"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "^orders$"), "orders.eu"));
}

TEST(TopicFilter, RegexCaseInsensitiveAndNegated) {
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "^ORDERS"), "orders.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kRegex, "^ORDERS", false), "orders.eu"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "^ORDERS", false), "payments"));
  EXPECT_FALSE(topic_matches(filter(FilterType::kRegex, "^orders", true, true), "orders.eu"));
  EXPECT_TRUE(topic_matches(filter(FilterType::kRegex, "^orders", true, true), "payments"));
}

TEST(TopicFilter, InvalidRegexIsAnErrorNamingThePattern) {
  auto matcher = TopicMatcher::compile(
      {filter(FilterType::kExact, "a"), filter(FilterType::kRegex, "orders.(eu")});
  ASSERT_FALSE(matcher.is_ok());
  EXPECT_EQ(matcher.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(matcher.status().message().rfind("topic_filters[1].pattern: invalid regex: ", 0), 0u)
      << matcher.status().message();
  EXPECT_NE(matcher.status().message().find("missing )"), std::string::npos)
      << matcher.status().message();
}

TEST(TopicFilter, SeveralFiltersMatchWhenAnyMatches) {
  TopicMatcher matcher =
      compile_filters({filter(FilterType::kExact, "payments"),
                       filter(FilterType::kPrefix, "orders."), filter(FilterType::kSuffix, ".eu")});
  EXPECT_EQ(matcher.size(), 3u);
  EXPECT_EQ(matcher.matching_filter("payments"), 0);
  EXPECT_EQ(matcher.matching_filter("orders.us"), 1);
  EXPECT_EQ(matcher.matching_filter("orders.eu"), 1);  // the first that matches
  EXPECT_EQ(matcher.matching_filter("refunds.eu"), 2);
  EXPECT_EQ(matcher.matching_filter("refunds.us"), TopicMatcher::kNoMatch);
  EXPECT_FALSE(matcher.matches("refunds.us"));
}

TEST(TopicFilter, NegateAppliesToItsOwnFilterBeforeTheOr) {
  // "not orders.*" OR "orders.eu": everything except orders.* other than orders.eu.
  TopicMatcher matcher = compile_filters({filter(FilterType::kPrefix, "orders.", true, true),
                                          filter(FilterType::kExact, "orders.eu")});
  EXPECT_TRUE(matcher.matches("payments"));
  EXPECT_TRUE(matcher.matches("orders.eu"));
  EXPECT_FALSE(matcher.matches("orders.us"));
}

// --- Conditional rules ------------------------------------------------------------------------

ConditionalRuleSpec rule(ConditionType type, std::string field_path, Operator op,
                         boost::json::value value, bool negate = false) {
  ConditionalRuleSpec spec;
  spec.condition_type = type;
  spec.field_path = std::move(field_path);
  spec.op = op;
  spec.value = std::move(value);
  spec.negate = negate;
  return spec;
}

ConditionalRuleSpec header_rule(std::string name, Operator op, boost::json::value value,
                                bool negate = false) {
  return rule(ConditionType::kHeaderValue, std::move(name), op, std::move(value), negate);
}

ConditionalRuleSpec field_rule(std::string path, Operator op, boost::json::value value,
                               bool negate = false) {
  return rule(ConditionType::kPayloadField, std::move(path), op, std::move(value), negate);
}

RuleSet compile_rules(const std::vector<ConditionalRuleSpec>& rules) {
  auto set = RuleSet::compile(rules);
  EXPECT_TRUE(set.is_ok()) << set.status().message();
  return set.is_ok() ? std::move(set).value() : RuleSet();
}

Message with_payload(std::string payload) {
  Message message;
  message.value = std::move(payload);
  return message;
}

Message with_header(std::string name, std::string value) {
  Message message;
  message.headers.emplace_back(std::move(name), std::move(value));
  return message;
}

bool rule_holds(const ConditionalRuleSpec& spec, const Message& message, int64_t now_ms = 0) {
  return compile_rules({spec}).holds(message, now_ms);
}

bool field_holds(const std::string& payload, std::string path, Operator op,
                 boost::json::value value, bool negate = false) {
  return rule_holds(field_rule(std::move(path), op, std::move(value), negate),
                    with_payload(payload));
}

Status compile_error(const ConditionalRuleSpec& spec) {
  auto set = RuleSet::compile({spec});
  EXPECT_FALSE(set.is_ok());
  return set.is_ok() ? Status::ok() : set.status();
}

TEST(ConditionalRule, NoRulesAlwaysHold) {
  RuleSet rules = compile_rules({});
  EXPECT_TRUE(rules.holds(Message{}, 0));
  EXPECT_EQ(rules.first_failing(Message{}, 0), -1);
  EXPECT_EQ(rules.size(), 0u);
}

TEST(ConditionalRule, HeaderValueComparesTheHeaderText) {
  const Message message = with_header("region", "eu-west");
  EXPECT_TRUE(rule_holds(header_rule("region", Operator::kEquals, "eu-west"), message));
  EXPECT_FALSE(rule_holds(header_rule("region", Operator::kEquals, "eu"), message));
  EXPECT_TRUE(rule_holds(header_rule("region", Operator::kNotEquals, "eu"), message));
  EXPECT_FALSE(rule_holds(header_rule("region", Operator::kNotEquals, "eu-west"), message));
}

TEST(ConditionalRule, HeaderNameIsExact) {
  const Message message = with_header("Region", "eu");
  EXPECT_FALSE(rule_holds(header_rule("region", Operator::kEquals, "eu"), message));
  EXPECT_TRUE(rule_holds(header_rule("Region", Operator::kEquals, "eu"), message));
}

TEST(ConditionalRule, MissingHeaderIsFalseBeforeNegate) {
  const Message message = with_header("other", "x");
  EXPECT_FALSE(rule_holds(header_rule("region", Operator::kNotEquals, "eu"), message));
  EXPECT_FALSE(rule_holds(header_rule("region", Operator::kEquals, "eu"), message));
  EXPECT_TRUE(rule_holds(header_rule("region", Operator::kEquals, "eu", true), message));
}

TEST(ConditionalRule, HeaderNumericTextComparesNumericallyWithANumber) {
  const Message message = with_header("priority", "10");
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kGreaterThan, 9), message));
  EXPECT_FALSE(rule_holds(header_rule("priority", Operator::kGreaterThan, 10), message));
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kEquals, 10.0), message));
  EXPECT_TRUE(
      rule_holds(header_rule("priority", Operator::kEquals, 10), with_header("priority", "1e1")));
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kLessThan, 10.5), message));
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kEquals, -2.5),
                         with_header("priority", "-2.50")));
}

TEST(ConditionalRule, HeaderTextComparesAsStringsWithAStringValue) {
  const Message message = with_header("priority", "10");
  // Lexicographic: "10" < "9".
  EXPECT_FALSE(rule_holds(header_rule("priority", Operator::kGreaterThan, "9"), message));
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kLessThan, "9"), message));
  EXPECT_FALSE(rule_holds(header_rule("priority", Operator::kEquals, "10.0"), message));
  EXPECT_TRUE(rule_holds(header_rule("priority", Operator::kEquals, "10"), message));
}

TEST(ConditionalRule, HeaderTextThatIsNotAllNumberComparesAsAString) {
  // "10 " and "10abc" are not numbers, so 9's text "9" is compared with them lexicographically.
  EXPECT_FALSE(rule_holds(header_rule("n", Operator::kGreaterThan, 9), with_header("n", "10abc")));
  EXPECT_FALSE(rule_holds(header_rule("n", Operator::kEquals, 10), with_header("n", "10 ")));
  EXPECT_TRUE(rule_holds(header_rule("n", Operator::kEquals, 10), with_header("n", "10")));
  // Were "-inf" a number it would be less; as text "-inf" > "-1e+300".
  EXPECT_FALSE(rule_holds(header_rule("n", Operator::kLessThan, -1e300), with_header("n", "-inf")));
  EXPECT_TRUE(rule_holds(header_rule("n", Operator::kGreaterThan, 1), with_header("n", "x")));
  EXPECT_FALSE(rule_holds(header_rule("n", Operator::kEquals, 16), with_header("n", "0x10")));
}

TEST(ConditionalRule, OrderingOperatorsOnNumbers) {
  const std::string payload = R"({"n": 5})";
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kGreaterThan, 4));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kGreaterThan, 5));
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kGreaterThanOrEqual, 5));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kGreaterThanOrEqual, 5.5));
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kLessThan, 6));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kLessThan, 5));
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kLessThanOrEqual, 5));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kLessThanOrEqual, 4.99));
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kEquals, 5));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kEquals, 6));
  EXPECT_TRUE(field_holds(payload, "$.n", Operator::kNotEquals, 6));
  EXPECT_FALSE(field_holds(payload, "$.n", Operator::kNotEquals, 5.0));
}

TEST(ConditionalRule, OrderingOperatorsOnStringsAreLexicographic) {
  const std::string payload = R"({"s": "banana"})";
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kGreaterThan, "apple"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kGreaterThan, "banana"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kGreaterThanOrEqual, "banana"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kLessThan, "bananas"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kLessThan, "apple"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kLessThanOrEqual, "banana"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kLessThanOrEqual, "ban"));
}

TEST(ConditionalRule, StringOperators) {
  const std::string payload = R"({"s": "order-eu-42"})";
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kContains, "eu"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kContains, "us"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kStartsWith, "order-"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kStartsWith, "eu"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kEndsWith, "-42"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kEndsWith, "eu"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kEquals, "order-eu-42"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kNotEquals, "order"));
}

TEST(ConditionalRule, MatchesSearchesWithRe2) {
  const std::string payload = R"({"s": "order-eu-42"})";
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kMatches, "eu-[0-9]+"));
  EXPECT_FALSE(field_holds(payload, "$.s", Operator::kMatches, "^eu"));
  EXPECT_TRUE(field_holds(payload, "$.s", Operator::kMatches, "^order-.*2$"));
  EXPECT_TRUE(rule_holds(header_rule("h", Operator::kMatches, "^v[0-9]$"), with_header("h", "v2")));
  EXPECT_FALSE(
      rule_holds(header_rule("h", Operator::kMatches, "^v[0-9]$"), with_header("h", "v22")));
}

TEST(ConditionalRule, StringOperatorsOnNumbersUseTheirText) {
  EXPECT_TRUE(field_holds(R"({"n": 12345})", "$.n", Operator::kContains, 234));
  EXPECT_TRUE(field_holds(R"({"n": 12345})", "$.n", Operator::kStartsWith, "12"));
  EXPECT_FALSE(field_holds(R"({"n": 12345})", "$.n", Operator::kEndsWith, "4"));
  EXPECT_TRUE(field_holds(R"({"n": 12345})", "$.n", Operator::kMatches, "^1\\d+5$"));
  EXPECT_TRUE(rule_holds(header_rule("h", Operator::kContains, 23), with_header("h", "1234")));
}

TEST(ConditionalRule, JsonNumberAgainstAStringValueComparesItsRawText) {
  EXPECT_TRUE(field_holds(R"({"n": 1.50})", "$.n", Operator::kEquals, 1.5));
  EXPECT_TRUE(field_holds(R"({"n": 1.50})", "$.n", Operator::kEquals, "1.50"));
  EXPECT_FALSE(field_holds(R"({"n": 1.50})", "$.n", Operator::kEquals, "1.5"));
  EXPECT_TRUE(field_holds(R"({"n": 1.50 , "m": 1})", "$.n", Operator::kEquals, "1.50"));
}

TEST(ConditionalRule, JsonStringHoldingDigitsIsAString) {
  // Only headers' text is read as a number; a JSON string stays a string.
  EXPECT_FALSE(field_holds(R"({"n": "10"})", "$.n", Operator::kGreaterThan, 9));
  EXPECT_TRUE(field_holds(R"({"n": "10"})", "$.n", Operator::kEquals, 10));
  EXPECT_FALSE(field_holds(R"({"n": "10.0"})", "$.n", Operator::kEquals, 10));
}

TEST(ConditionalRule, JsonBoolsCompareAsStrings) {
  EXPECT_TRUE(field_holds(R"({"b": true})", "$.b", Operator::kEquals, true));
  EXPECT_TRUE(field_holds(R"({"b": true})", "$.b", Operator::kEquals, "true"));
  EXPECT_FALSE(field_holds(R"({"b": false})", "$.b", Operator::kEquals, true));
  EXPECT_TRUE(field_holds(R"({"b": false})", "$.b", Operator::kNotEquals, true));
  EXPECT_FALSE(field_holds(R"({"b": true})", "$.b", Operator::kEquals, 1));
  EXPECT_TRUE(field_holds(R"({"b": "true"})", "$.b", Operator::kEquals, true));
  EXPECT_TRUE(rule_holds(header_rule("h", Operator::kEquals, false), with_header("h", "false")));
}

TEST(ConditionalRule, JsonNullAndContainersCompareAsTheirRawText) {
  EXPECT_TRUE(field_holds(R"({"n": null})", "$.n", Operator::kEquals, "null"));
  EXPECT_TRUE(field_holds(R"({"o": {"x": 1}})", "$.o", Operator::kEquals, R"({"x": 1})"));
  EXPECT_TRUE(field_holds(R"({"a": [1, 2]})", "$.a", Operator::kContains, "2]"));
  EXPECT_FALSE(field_holds(R"({"a": [1, 2]})", "$.a", Operator::kContains, "3"));
}

TEST(ConditionalRule, PayloadStringIsUnescaped) {
  EXPECT_TRUE(field_holds(R"({"s": "a\"b\u00e9"})", "$.s", Operator::kEquals, "a\"b\xc3\xa9"));
  EXPECT_FALSE(field_holds(R"({"s": "a\"b"})", "$.s", Operator::kEquals, "a\\\"b"));
}

TEST(ConditionalRule, PayloadFieldFollowsNestedPaths) {
  const std::string payload =
      R"({"a": {"b": "deep", "list": [10, 20, {"c": "in"}]}, "a b": 7, "x": [[1, 2], [3, 4]]})";
  EXPECT_TRUE(field_holds(payload, "$.a.b", Operator::kEquals, "deep"));
  EXPECT_FALSE(field_holds(payload, "$.a.b", Operator::kEquals, "shallow"));
  EXPECT_TRUE(field_holds(payload, "$.a.list[1]", Operator::kEquals, 20));
  EXPECT_FALSE(field_holds(payload, "$.a.list[0]", Operator::kEquals, 20));
  EXPECT_TRUE(field_holds(payload, "$.a.list[2].c", Operator::kEquals, "in"));
  EXPECT_TRUE(field_holds(payload, "$['a b']", Operator::kEquals, 7));
  EXPECT_TRUE(field_holds(payload, "$[\"a\"]['b']", Operator::kEquals, "deep"));
  EXPECT_TRUE(field_holds(payload, "$.x[1][0]", Operator::kEquals, 3));
  EXPECT_TRUE(field_holds(R"([{"id": 1}, {"id": 2}])", "$[1].id", Operator::kEquals, 2));
}

TEST(ConditionalRule, PayloadFieldDoesNotSkipLevels) {
  // "$.b" is a top-level field only: the nested "b" does not count.
  EXPECT_FALSE(field_holds(R"({"a": {"b": 1}})", "$.b", Operator::kEquals, 1));
  // The key comes after a value with the same text.
  EXPECT_TRUE(field_holds(R"({"x": "b", "b": 1})", "$.b", Operator::kEquals, 1));
}

TEST(ConditionalRule, QuotedKeysWithSpecialCharacters) {
  EXPECT_TRUE(field_holds(R"({"a\"b": 1})", R"($['a"b'])", Operator::kEquals, 1));
  EXPECT_TRUE(field_holds(R"({"it's": 2})", R"($['it\'s'])", Operator::kEquals, 2));
  EXPECT_TRUE(field_holds(R"({"a.b": 3, "a": {"b": 4}})", "$['a.b']", Operator::kEquals, 3));
  EXPECT_TRUE(field_holds(R"({"a.b": 3, "a": {"b": 4}})", "$.a.b", Operator::kEquals, 4));
}

TEST(ConditionalRule, KeysAreMatchedAsWrittenInThePayload) {
  // simdjson compares raw keys: a needlessly escaped key does not match its plain spelling.
  EXPECT_FALSE(field_holds(R"({"\u0061": 1})", "$.a", Operator::kEquals, 1));
  EXPECT_TRUE(field_holds(R"({"a": 1})", "$.a", Operator::kEquals, 1));
}

TEST(ConditionalRule, WholePayloadIsDollar) {
  EXPECT_TRUE(field_holds("42", "$", Operator::kEquals, 42));
  EXPECT_TRUE(field_holds(R"("hi")", "$", Operator::kEquals, "hi"));
  EXPECT_TRUE(field_holds(R"({"a":1})", "$", Operator::kContains, "\"a\""));
}

TEST(ConditionalRule, MissingFieldIsFalseBeforeNegate) {
  const std::string payload = R"({"a": {"b": 1}, "list": [1]})";
  EXPECT_FALSE(field_holds(payload, "$.a.c", Operator::kEquals, 1));
  EXPECT_FALSE(field_holds(payload, "$.a.c", Operator::kNotEquals, 1));
  EXPECT_TRUE(field_holds(payload, "$.a.c", Operator::kEquals, 1, true));
  EXPECT_FALSE(field_holds(payload, "$.list[1]", Operator::kNotEquals, 5));
  EXPECT_TRUE(field_holds(payload, "$.list[1]", Operator::kNotEquals, 5, true));
  // Wrong type along the way: an index into an object, a name into an array or a number.
  EXPECT_FALSE(field_holds(payload, "$.a[0]", Operator::kNotEquals, 5));
  EXPECT_FALSE(field_holds(payload, "$.list.x", Operator::kNotEquals, 5));
  EXPECT_FALSE(field_holds(payload, "$.a.b.c", Operator::kNotEquals, 5));
  EXPECT_TRUE(field_holds(payload, "$.a.b.c", Operator::kNotEquals, 5, true));
}

TEST(ConditionalRule, NonJsonPayloadIsFalseBeforeNegate) {
  for (const std::string& payload : {std::string("not json"), std::string(""),
                                     std::string("\xff\xfe\x00\x01", 4), std::string("{\"a\": ")}) {
    EXPECT_FALSE(field_holds(payload, "$.a", Operator::kNotEquals, "x")) << payload;
    EXPECT_TRUE(field_holds(payload, "$.a", Operator::kNotEquals, "x", true)) << payload;
  }
}

TEST(ConditionalRule, PayloadWithSpareCapacityIsReadInPlace) {
  Message message = with_payload(R"({"a": "in place"})");
  message.value.reserve(1024);
  EXPECT_TRUE(rule_holds(field_rule("$.a", Operator::kEquals, "in place"), message));
  EXPECT_FALSE(rule_holds(field_rule("$.a", Operator::kEquals, "copied"), message));
}

TEST(ConditionalRule, SeveralPayloadRulesReadTheSameDocument) {
  const Message message = with_payload(
      R"({"id": 7, "user": {"name": "ann", "tags": ["a", "b"]}, "total": 12.5, "ok": true})");
  RuleSet rules = compile_rules({
      field_rule("$.user.name", Operator::kEquals, "ann"),
      field_rule("$.missing", Operator::kEquals, 1, true),  // a failed walk in the middle
      field_rule("$.id", Operator::kEquals, 7),
      field_rule("$.user.tags[1]", Operator::kEquals, "b"),
      field_rule("$.total", Operator::kGreaterThan, 12),
      field_rule("$.ok", Operator::kEquals, true),
  });
  EXPECT_EQ(rules.first_failing(message, 0), -1);
  EXPECT_TRUE(rules.holds(message, 0));
}

TEST(ConditionalRule, ARuleAfterABrokenPartOfThePayloadStillReadsIt) {
  // The first walk meets the missing colon after "x" (simdjson abandons the document there);
  // the second rule reads the payload afresh and finds "a" before the damage.
  const Message message = with_payload(R"({"a": 1, "x" 2, "b": 3})");
  RuleSet rules = compile_rules(
      {field_rule("$.b", Operator::kEquals, 3, true), field_rule("$.a", Operator::kEquals, 1)});
  EXPECT_EQ(rules.first_failing(message, 0), -1);
  RuleSet broken_last = compile_rules(
      {field_rule("$.a", Operator::kEquals, 1), field_rule("$.b", Operator::kEquals, 3)});
  EXPECT_EQ(broken_last.first_failing(message, 0), 1);
}

TEST(ConditionalRule, AllRulesMustHoldAndTheFirstFailingIsReported) {
  Message message = with_payload(R"({"a": 1, "b": 2})");
  message.headers.emplace_back("h", "x");
  RuleSet rules = compile_rules({
      header_rule("h", Operator::kEquals, "x"),
      field_rule("$.a", Operator::kEquals, 1),
      field_rule("$.b", Operator::kEquals, 3),
      header_rule("h", Operator::kEquals, "y"),
  });
  EXPECT_EQ(rules.size(), 4u);
  EXPECT_FALSE(rules.holds(message, 0));
  EXPECT_EQ(rules.first_failing(message, 0), 2);
}

TEST(ConditionalRule, MessageSizeCountsKeyValueAndHeaders) {
  Message message;
  message.key = "k";                          // 1
  message.value = "hello";                    // 5
  message.headers.emplace_back("ab", "cde");  // 5
  message.headers.emplace_back("f", "");      // 1
  auto size_rule = [](Operator op, boost::json::value value) {
    return rule(ConditionType::kMessageSize, "", op, std::move(value));
  };
  EXPECT_TRUE(rule_holds(size_rule(Operator::kEquals, 12), message));
  EXPECT_FALSE(rule_holds(size_rule(Operator::kEquals, 11), message));
  EXPECT_TRUE(rule_holds(size_rule(Operator::kGreaterThan, 11), message));
  EXPECT_FALSE(rule_holds(size_rule(Operator::kGreaterThan, 12), message));
  EXPECT_TRUE(rule_holds(size_rule(Operator::kLessThanOrEqual, 12), message));
  message.key.reset();
  EXPECT_TRUE(rule_holds(size_rule(Operator::kEquals, 11), message));
  EXPECT_TRUE(rule_holds(size_rule(Operator::kEquals, 0), Message{}));
}

TEST(ConditionalRule, MessageAgeIsNowMinusTimestamp) {
  Message message;
  message.timestamp = 1'000;
  auto age_rule = [](Operator op, boost::json::value value) {
    return rule(ConditionType::kMessageAge, "", op, std::move(value));
  };
  EXPECT_TRUE(rule_holds(age_rule(Operator::kEquals, 5'000), message, 6'000));
  EXPECT_TRUE(rule_holds(age_rule(Operator::kGreaterThanOrEqual, 5'000), message, 6'000));
  EXPECT_FALSE(rule_holds(age_rule(Operator::kGreaterThan, 5'000), message, 6'000));
  EXPECT_TRUE(rule_holds(age_rule(Operator::kGreaterThan, 5'000), message, 6'001));
  EXPECT_TRUE(rule_holds(age_rule(Operator::kLessThan, 0), message, 999));  // from the future
}

// --- Compile-time checks of rules -------------------------------------------------------------

TEST(ConditionalRule, ValueMustBeAStringNumberOrBool) {
  for (boost::json::value value :
       {boost::json::value(nullptr), boost::json::value(boost::json::object()),
        boost::json::value(boost::json::array())}) {
    Status status = compile_error(header_rule("h", Operator::kEquals, value));
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message().rfind("conditional_rules[0].value: ", 0), 0u) << status.message();
  }
}

TEST(ConditionalRule, MatchesNeedsAValidRegexString) {
  Status status = compile_error(header_rule("h", Operator::kMatches, 5));
  EXPECT_EQ(status.message().rfind("conditional_rules[0].value: ", 0), 0u) << status.message();

  auto set = RuleSet::compile(
      {header_rule("h", Operator::kEquals, "x"), header_rule("h", Operator::kMatches, "(a")});
  ASSERT_FALSE(set.is_ok());
  EXPECT_EQ(set.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(set.status().message().rfind("conditional_rules[1].value: invalid regex: ", 0), 0u)
      << set.status().message();
}

TEST(ConditionalRule, SizeAndAgeOrderingNeedANumber) {
  for (ConditionType type : {ConditionType::kMessageSize, ConditionType::kMessageAge}) {
    Status status = compile_error(rule(type, "", Operator::kGreaterThan, "100"));
    EXPECT_EQ(status.message().rfind("conditional_rules[0].value: ", 0), 0u) << status.message();
    EXPECT_TRUE(RuleSet::compile({rule(type, "", Operator::kGreaterThan, 100)}).is_ok());
  }
}

TEST(ConditionalRule, HeaderValueNeedsAHeaderName) {
  Status status = compile_error(header_rule("", Operator::kEquals, "x"));
  EXPECT_EQ(status.message().rfind("conditional_rules[0].field_path: ", 0), 0u) << status.message();
}

TEST(ConditionalRule, PayloadFieldPathMustBeInTheSubset) {
  auto set = RuleSet::compile(
      {field_rule("$.a", Operator::kEquals, 1), field_rule("a.b", Operator::kEquals, 1)});
  ASSERT_FALSE(set.is_ok());
  EXPECT_EQ(set.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(set.status().message().rfind("conditional_rules[1].field_path: ", 0), 0u)
      << set.status().message();
}

// --- The JSONPath subset ----------------------------------------------------------------------

TEST(JsonPath, ParsesTheSubset) {
  auto path = parse_json_path("$.a.b[12]['c d'][\"e\"]['it\\'s']");
  ASSERT_TRUE(path.is_ok()) << path.status().message();
  ASSERT_EQ(path->size(), 6u);
  EXPECT_FALSE((*path)[0].is_index);
  EXPECT_EQ((*path)[0].name, "a");
  EXPECT_EQ((*path)[1].name, "b");
  EXPECT_TRUE((*path)[2].is_index);
  EXPECT_EQ((*path)[2].index, 12u);
  EXPECT_EQ((*path)[3].name, "c d");
  EXPECT_EQ((*path)[4].name, "e");
  EXPECT_EQ((*path)[5].name, "it's");
}

TEST(JsonPath, DollarAloneIsTheWholeDocument) {
  auto path = parse_json_path("$");
  ASSERT_TRUE(path.is_ok()) << path.status().message();
  EXPECT_TRUE(path->empty());
}

TEST(JsonPath, RejectsPathsOutsideTheSubset) {
  for (const char* bad : {"", "a.b", "$.", "$[x]", "$['unterminated", "$['a'", "$[\"a']", "$[1",
                          "$[]", "$[-1]", "$a", "$..a", "$.*", "$[*]", "$.a b",
                          "$[99999999999999999999999]", "$['a\\n']", "$.a.", "$.a[0]x"}) {
    auto path = parse_json_path(bad);
    EXPECT_FALSE(path.is_ok()) << "accepted: " << bad;
    if (!path.is_ok()) {
      EXPECT_EQ(path.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(path.status().message().find("invalid JSONPath"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace wasmq::etl
