// Internal to the pipeline parser: what its pieces (pipeline_reader.cc, pipeline_parse.cc,
// pipeline_parse_stages.cc) share. The enum name tables are defined in pipeline.cc.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/status.h"
#include "etl/pipeline.h"

namespace wasmq::etl::pipeline_detail {

namespace json = boost::json;

inline constexpr size_t kMaxShownValue = 64;

template <typename E>
using NameTable = std::initializer_list<std::pair<std::string_view, E>>;

extern const NameTable<FilterType> kFilterTypes;
extern const NameTable<ConditionType> kConditionTypes;
extern const NameTable<Operator> kOperators;
extern const NameTable<ErrorHandling> kErrorHandlings;
extern const NameTable<PipelineMode> kModes;

template <typename E>
std::string_view name_in(NameTable<E> table, E value) {
  for (const auto& [name, entry] : table) {
    if (entry == value) return name;
  }
  return "?";
}

bool contains(std::initializer_list<std::string_view> names, std::string_view name);

bool is_id_char(char c);

// `text` cut to at most `limit` bytes, not inside a UTF-8 sequence.
std::string shorten(std::string text, size_t limit = kMaxShownValue);

// The shortest text that reads back as `number` ("0.5", not Boost.JSON's "5E-1").
std::string format_double(double number);

// How a wrong value is shown in a message: on one line, shortened.
std::string describe(const json::value& value);

std::string quoted(std::string_view text);

// "parent.key", or parent["key"] when the key would not read as a plain name.
std::string member_path(const std::string& parent, std::string_view key);

std::string index_path(const std::string& parent, size_t index);

// The name part of a module id: "name" of "name-vX.Y.Z", or the whole id when it has no
// version suffix.
std::string_view module_name_of(std::string_view module_id);

// Reads one document, keeping the first failure. Every read_* returns false once it failed.
class DocumentReader {
 public:
  Status take_error() { return std::move(error_); }

  bool read_pipeline(const json::value& document, std::string_view generated_id, PipelineSpec* out);

 private:
  // Field readers (pipeline_reader.cc).

  bool fail(std::string path, std::string_view what);
  // Refuses members of `object` outside `known`.
  bool check_members(const json::object& object, const std::string& path,
                     std::initializer_list<std::string_view> known);
  bool required(const json::object& object, const std::string& parent, std::string_view key,
                const json::value** value);
  // An optional object member; *object stays null when absent (or null, when `null_is_absent`).
  bool read_object(const json::object& parent_object, const std::string& parent,
                   std::string_view key, bool null_is_absent, const json::object** object);
  bool read_array(const json::value& value, const std::string& path, size_t max_size,
                  const json::array** array);
  bool read_bool(const json::object& object, const std::string& parent, std::string_view key,
                 bool* out);
  // A JSON integer in [min, max].
  bool integer_in(const json::value& value, const std::string& path, uint64_t min, uint64_t max,
                  uint64_t* out);

  template <typename T>
  static void assign(T* out, uint64_t number) {
    *out = static_cast<T>(number);
  }
  template <typename T>
  static void assign(std::optional<T>* out, uint64_t number) {
    *out = static_cast<T>(number);
  }

  // An integer member; `Out` is an unsigned integer or an optional one (null = absent then).
  template <typename Out>
  bool read_integer(const json::object& object, const std::string& parent, std::string_view key,
                    uint64_t min, uint64_t max, Out* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    constexpr bool kOptional = !std::is_integral_v<Out>;
    if (kOptional && value->is_null()) return true;
    uint64_t number = 0;
    if (!integer_in(*value, member_path(parent, key), min, max, &number)) return false;
    assign(out, number);
    return true;
  }

  bool read_signed(const json::object& object, const std::string& parent, std::string_view key,
                   int64_t* out);
  bool read_double(const json::object& object, const std::string& parent, std::string_view key,
                   double min, double max, double* out);

  // A string member of at most `max_length` bytes. Absent leaves *out as it is; present, it
  // must not be empty.
  template <typename Out>
  bool read_string(const json::object& object, const std::string& parent, std::string_view key,
                   size_t max_length, Out* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    constexpr bool kOptional = !std::is_same_v<Out, std::string>;
    if (kOptional && value->is_null()) return true;
    return string_in(*value, member_path(parent, key), max_length, out);
  }

  template <typename Out>
  bool string_in(const json::value& value, const std::string& path, size_t max_length, Out* out) {
    const json::string* text = value.if_string();
    if (text == nullptr || text->empty()) {
      return fail(path, "expected a non-empty string, got " + describe(value));
    }
    if (text->size() > max_length) {
      return fail(path, "expected at most " + std::to_string(max_length) + " bytes, got " +
                            std::to_string(text->size()));
    }
    *out = std::string(*text);
    return true;
  }

  template <typename E>
  bool enum_in(const json::value& value, const std::string& path, NameTable<E> table, E* out) {
    if (const json::string* text = value.if_string()) {
      for (const auto& [name, entry] : table) {
        if (*text == name) {
          *out = entry;
          return true;
        }
      }
    }
    std::string names;
    for (const auto& [name, entry] : table) {
      names += names.empty() ? "" : ", ";
      names += name;
    }
    return fail(path, "expected one of " + names + ", got " + describe(value));
  }

  template <typename E>
  bool read_enum(const json::object& object, const std::string& parent, std::string_view key,
                 NameTable<E> table, E* out) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) return true;
    return enum_in(*value, member_path(parent, key), table, out);
  }

  // 1-128 of [A-Za-z0-9._-], not starting with '.': ids become file names (<id>.json), which
  // would be hidden, and "." and ".." are no names.
  bool check_id(const std::string& id, const std::string& path, std::string_view what);
  bool read_id(const json::object& object, std::string_view key, std::string_view generated_id,
               std::string* out);
  bool check_topic(const std::string& topic, const std::string& path);
  bool read_topic(const json::object& object, const std::string& parent, std::string_view key,
                  std::string* out);

  // The pipeline's own members (pipeline_parse.cc).

  // The members both forms share: everything but the name and the stages.
  bool read_common(const json::object& object, PipelineSpec* spec, bool* have_error_handling);
  bool read_retry_config(const json::object& object, PipelineSpec* spec);
  bool read_dead_letter_config(const json::object& object, PipelineSpec* spec);
  bool read_circuit_breaker(const json::object& object, PipelineSpec* spec);
  // Globs over topic names: [A-Za-z0-9._-] plus * and ?.
  bool read_allowed_output_topics(const json::object& object, PipelineSpec* spec);
  static bool configuration_has_retry_policy(const json::object& object);
  bool read_configuration(const json::object& object, PipelineSpec* spec);
  // "earliest" | "latest" | "<offset>" | "@<timestamp_ms>"; a JSON integer is an offset.
  bool read_start_from(const json::object& object, PipelineSpec* spec);
  // The seed 001 form: one stage of one module, a stream pipeline.
  bool read_single_module_form(const json::object& object, PipelineSpec* spec);
  bool check_mode(const json::object& object, bool single_module_form, PipelineSpec* spec);

  // The stages and what they hold (pipeline_parse_stages.cc).

  bool read_stages(const json::object& object, PipelineSpec* spec);
  bool read_stage(const json::value& value, const std::string& path, StageSpec* stage);
  bool read_module(const json::value& value, const std::string& path, ModuleSpec* module);
  bool read_instance_config(const json::object& module, const std::string& module_path,
                            InstanceConfig* config);
  bool read_filter(const json::value& value, const std::string& path, TopicFilterSpec* filter);
  bool read_rule(const json::value& value, const std::string& path, ConditionalRuleSpec* rule);

  Status error_;
};

}  // namespace wasmq::etl::pipeline_detail
