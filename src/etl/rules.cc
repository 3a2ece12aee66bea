// Conditional rules (match.h's RuleSet): compiled once, evaluated per message; PayloadField
// rules walk the payload with simdjson On-Demand.
#include <re2/re2.h>
#include <simdjson.h>

#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <system_error>

#include "etl/match.h"
#include "etl/match_regex.h"

namespace wasmq::etl {
namespace {

namespace ondemand = simdjson::ondemand;

// A header's text counts as a number when all of it parses as a finite double ("42", "-1.5",
// "1e3"); "inf", "nan", " 42" and "42abc" do not.
bool parse_number(std::string_view text, double* out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

std::string_view trim_trailing_space(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// The JSON text of an object key as a writer using the shortest escapes would produce it.
// simdjson's find_field compares raw (still escaped) keys, so the path's key is escaped once
// here instead of unescaping every key of every payload.
std::string escape_json_key(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

bool is_ordering(Operator op) {
  return op == Operator::kGreaterThan || op == Operator::kLessThan ||
         op == Operator::kGreaterThanOrEqual || op == Operator::kLessThanOrEqual;
}

bool is_comparison(Operator op) {
  return op == Operator::kEquals || op == Operator::kNotEquals || is_ordering(op);
}

// The left-hand side of a rule for one message: its text (for string comparisons and the string
// operators) and, when it is one, its number.
struct Operand {
  std::string_view text;
  bool is_number = false;
  double number = 0;
};

// Room for the decimal text of any 64-bit integer.
using NumberText = std::array<char, 24>;

std::string_view integer_text(int64_t n, NumberText* buffer) {
  auto [ptr, ec] = std::to_chars(buffer->data(), buffer->data() + buffer->size(), n);
  return {buffer->data(), static_cast<size_t>(ptr - buffer->data())};
}

struct CompiledStep {
  bool is_index = false;
  std::string raw_key;  // the key as escaped JSON text (see escape_json_key)
  size_t index = 0;
};

// One reader per thread: the On-Demand parser keeps its buffers between messages, and
// `padded` holds a copy of payloads whose string has too little spare capacity for simdjson's
// padding. Both only grow, so steady state allocates nothing.
struct PayloadReader {
  ondemand::parser parser;
  std::string padded;
};

thread_local PayloadReader t_reader;

// The payload of one message as seen by every PayloadField rule of a RuleSet: stage 1 runs once;
// each rule rewinds the document and walks its path.
class PayloadDocument {
 public:
  explicit PayloadDocument(const std::string& payload) : payload_(payload) {}

  // Positions the document at its root for a new walk; false when the payload is not JSON.
  bool start_walk() {
    if (state_ == State::kUnusable) return false;
    if (state_ == State::kReady) {
      doc_.rewind();
      return true;
    }
    // kUnread, or kSpoiled: a failed walk may have abandoned the iterator (simdjson nulls its
    // parser on some errors), so rewinding is not safe; run stage 1 again.
    if (state_ == State::kUnread) view_ = padded_view();
    if (t_reader.parser.iterate(view_).get(doc_) != simdjson::SUCCESS) {
      state_ = State::kUnusable;
      return false;
    }
    state_ = State::kReady;
    return true;
  }

  // Called after a walk that hit a simdjson error.
  void spoil() {
    if (state_ == State::kReady) state_ = State::kSpoiled;
  }

  ondemand::document& doc() { return doc_; }

 private:
  enum class State { kUnread, kReady, kSpoiled, kUnusable };

  simdjson::padded_string_view padded_view() {
    if (payload_.capacity() - payload_.size() >= simdjson::SIMDJSON_PADDING) {
      return simdjson::padded_string_view(payload_.data(), payload_.size(), payload_.capacity());
    }
    std::string& padded = t_reader.padded;
    padded.reserve(payload_.size() + simdjson::SIMDJSON_PADDING);
    padded.assign(payload_);
    return simdjson::padded_string_view(padded.data(), padded.size(), padded.capacity());
  }

  const std::string& payload_;
  State state_ = State::kUnread;
  simdjson::padded_string_view view_;
  ondemand::document doc_;
};

std::string_view raw_token(ondemand::value& node) { return node.raw_json_token(); }
std::string_view raw_token(ondemand::document& node) {
  std::string_view token;
  if (node.raw_json_token().get(token)) return {};
  return token;
}

// Reads `node` (the value at the end of the path) into `out`. Strings are unescaped (into the
// parser's buffer, valid until the next walk); numbers keep their raw text beside the double;
// true/false read as "true"/"false"; null, objects and arrays as their raw JSON text.
template <typename Node>
bool read_operand(Node& node, Operand* out) {
  ondemand::json_type type;
  if (node.type().get(type)) return false;
  switch (type) {
    case ondemand::json_type::number: {
      out->text = trim_trailing_space(raw_token(node));
      if (node.get_double().get(out->number)) return false;
      out->is_number = true;
      return true;
    }
    case ondemand::json_type::string:
      return !node.get_string().get(out->text);
    case ondemand::json_type::boolean: {
      bool b = false;
      if (node.get_bool().get(b)) return false;
      out->text = b ? "true" : "false";
      return true;
    }
    case ondemand::json_type::null: {
      bool is_null = false;
      if (node.is_null().get(is_null) || !is_null) return false;
      out->text = "null";
      return true;
    }
    case ondemand::json_type::object: {
      ondemand::object object;
      if (node.get_object().get(object) || object.raw_json().get(out->text)) return false;
      out->text = trim_trailing_space(out->text);
      return true;
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (node.get_array().get(array) || array.raw_json().get(out->text)) return false;
      out->text = trim_trailing_space(out->text);
      return true;
    }
  }
  return false;
}

template <typename Node>
bool step_into(Node& node, const CompiledStep& step, ondemand::value* next) {
  if (step.is_index) {
    ondemand::array array;
    if (node.get_array().get(array)) return false;
    return !array.at(step.index).get(*next);
  }
  ondemand::object object;
  if (node.get_object().get(object)) return false;
  return !object.find_field(step.raw_key).get(*next);
}

bool walk(ondemand::document& doc, const std::vector<CompiledStep>& steps, Operand* out) {
  if (steps.empty()) return read_operand(doc, out);
  ondemand::value current;
  if (!step_into(doc, steps[0], &current)) return false;
  for (size_t s = 1; s < steps.size(); ++s) {
    if (!step_into(current, steps[s], &current)) return false;
  }
  return read_operand(current, out);
}

}  // namespace

struct RuleSet::Compiled {
  ConditionType type = ConditionType::kHeaderValue;
  Operator op = Operator::kEquals;
  bool negate = false;
  std::string header_name;         // HeaderValue
  std::vector<CompiledStep> path;  // PayloadField
  // The rule's value: its text always (a bool as "true"/"false", a number in its shortest
  // form), and its number when it is a JSON number.
  std::string value_text;
  bool value_is_number = false;
  double value_number = 0;
  std::unique_ptr<RE2> regex;  // Matches

  // The rule's own result before negate; false when its left-hand side is missing.
  bool own_result(const Message& message, int64_t now_ms,
                  std::optional<PayloadDocument>* payload) const;

  // The operator applied to `left` and the rule's value, before negate.
  bool apply(const Operand& left) const {
    if (is_comparison(op)) {
      if (left.is_number && value_is_number) {
        const double a = left.number;
        const double b = value_number;
        switch (op) {
          case Operator::kEquals:
            return a == b;
          case Operator::kNotEquals:
            return a != b;
          case Operator::kGreaterThan:
            return a > b;
          case Operator::kLessThan:
            return a < b;
          case Operator::kGreaterThanOrEqual:
            return a >= b;
          case Operator::kLessThanOrEqual:
            return a <= b;
          default:
            return false;
        }
      }
      const int c = left.text.compare(value_text);
      switch (op) {
        case Operator::kEquals:
          return c == 0;
        case Operator::kNotEquals:
          return c != 0;
        case Operator::kGreaterThan:
          return c > 0;
        case Operator::kLessThan:
          return c < 0;
        case Operator::kGreaterThanOrEqual:
          return c >= 0;
        case Operator::kLessThanOrEqual:
          return c <= 0;
        default:
          return false;
      }
    }
    switch (op) {
      case Operator::kContains:
        return left.text.find(value_text) != std::string_view::npos;
      case Operator::kStartsWith:
        return left.text.starts_with(value_text);
      case Operator::kEndsWith:
        return left.text.ends_with(value_text);
      case Operator::kMatches:
        return match_detail::regex_search(left.text, *regex);
      default:
        return false;
    }
  }
};

RuleSet::RuleSet() = default;
RuleSet::~RuleSet() = default;
RuleSet::RuleSet(RuleSet&&) noexcept = default;
RuleSet& RuleSet::operator=(RuleSet&&) noexcept = default;

Result<RuleSet> RuleSet::compile(const std::vector<ConditionalRuleSpec>& rules) {
  RuleSet set;
  set.rules_.reserve(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    const ConditionalRuleSpec& spec = rules[i];
    const std::string where = "conditional_rules[" + std::to_string(i) + "]";
    auto rule = std::make_unique<Compiled>();
    rule->type = spec.condition_type;
    rule->op = spec.op;
    rule->negate = spec.negate;

    switch (spec.condition_type) {
      case ConditionType::kHeaderValue:
        if (spec.field_path.empty()) {
          return invalid_argument(where + ".field_path: must name a header");
        }
        rule->header_name = spec.field_path;
        break;
      case ConditionType::kPayloadField: {
        auto steps = parse_json_path(spec.field_path);
        if (!steps.is_ok()) return steps.status().with_context(where + ".field_path");
        for (const PathStep& step : *steps) {
          CompiledStep compiled;
          compiled.is_index = step.is_index;
          if (step.is_index) {
            if (step.index > std::numeric_limits<size_t>::max()) {
              return invalid_argument(where + ".field_path: array index too large");
            }
            compiled.index = static_cast<size_t>(step.index);
          } else {
            compiled.raw_key = escape_json_key(step.name);
          }
          rule->path.push_back(std::move(compiled));
        }
        break;
      }
      case ConditionType::kMessageSize:
      case ConditionType::kMessageAge:
        break;
    }

    const boost::json::value& value = spec.value;
    switch (value.kind()) {
      case boost::json::kind::string:
        rule->value_text.assign(value.get_string().data(), value.get_string().size());
        break;
      case boost::json::kind::bool_:
        rule->value_text = value.get_bool() ? "true" : "false";
        break;
      case boost::json::kind::int64:
      case boost::json::kind::uint64:
      case boost::json::kind::double_: {
        std::array<char, 32> buffer;
        std::to_chars_result written;
        if (value.is_int64()) {
          rule->value_number = static_cast<double>(value.get_int64());
          written = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value.get_int64());
        } else if (value.is_uint64()) {
          rule->value_number = static_cast<double>(value.get_uint64());
          written = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value.get_uint64());
        } else {
          rule->value_number = value.get_double();
          if (!std::isfinite(rule->value_number)) {
            return invalid_argument(where + ".value: must be a finite number");
          }
          written = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value.get_double());
        }
        rule->value_is_number = true;
        rule->value_text.assign(buffer.data(), written.ptr);
        break;
      }
      default:
        return invalid_argument(where + ".value: must be a string, a number or a bool");
    }

    if (spec.op == Operator::kMatches) {
      if (!value.is_string()) {
        return invalid_argument(where + ".value: Matches needs a string (an RE2 pattern)");
      }
      std::string error;
      rule->regex = match_detail::compile_regex(rule->value_text, true, &error);
      if (!rule->regex) return invalid_argument(where + ".value: invalid regex: " + error);
    }
    if ((spec.condition_type == ConditionType::kMessageSize ||
         spec.condition_type == ConditionType::kMessageAge) &&
        is_ordering(spec.op) && !rule->value_is_number) {
      return invalid_argument(
          where + ".value: an ordering operator on " +
          (spec.condition_type == ConditionType::kMessageSize ? "MessageSize" : "MessageAge") +
          " needs a number");
    }
    set.rules_.push_back(std::move(rule));
  }
  return set;
}

bool RuleSet::Compiled::own_result(const Message& message, int64_t now_ms,
                                   std::optional<PayloadDocument>* payload) const {
  Operand left;
  NumberText number_text;
  switch (type) {
    case ConditionType::kHeaderValue: {
      const std::string* header = message.header(header_name);
      if (header == nullptr) return false;
      left.text = *header;
      // Parsing is only worth it when a numeric comparison can follow.
      if (value_is_number && is_comparison(op)) {
        left.is_number = parse_number(left.text, &left.number);
      }
      return apply(left);
    }
    case ConditionType::kPayloadField: {
      if (!payload->has_value()) payload->emplace(message.value);
      PayloadDocument& document = **payload;
      if (!document.start_walk()) return false;
      if (!walk(document.doc(), path, &left)) {
        document.spoil();
        return false;
      }
      return apply(left);
    }
    case ConditionType::kMessageSize: {
      uint64_t size = message.key ? message.key->size() : 0;
      size += message.value.size();
      for (const auto& [name, value] : message.headers) size += name.size() + value.size();
      left.is_number = true;
      left.number = static_cast<double>(size);
      auto [ptr, ec] =
          std::to_chars(number_text.data(), number_text.data() + number_text.size(), size);
      left.text =
          std::string_view(number_text.data(), static_cast<size_t>(ptr - number_text.data()));
      return apply(left);
    }
    case ConditionType::kMessageAge: {
      int64_t age = 0;
      if (__builtin_sub_overflow(now_ms, message.timestamp, &age)) {
        age = message.timestamp < 0 ? std::numeric_limits<int64_t>::max()
                                    : std::numeric_limits<int64_t>::min();
      }
      left.is_number = true;
      left.number = static_cast<double>(age);
      left.text = integer_text(age, &number_text);
      return apply(left);
    }
  }
  return false;
}

int RuleSet::first_failing(const Message& message, int64_t now_ms) const {
  std::optional<PayloadDocument> payload;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Compiled& rule = *rules_[i];
    if (rule.own_result(message, now_ms, &payload) == rule.negate) return static_cast<int>(i);
  }
  return -1;
}

size_t RuleSet::size() const { return rules_.size(); }

}  // namespace wasmq::etl
