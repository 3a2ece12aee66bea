// The pipeline document's enum names as the documents spell them; the parser
// (pipeline_parse*.cc, pipeline_reader.cc) reads the same tables.
#include "etl/pipeline.h"

#include <string_view>

#include "etl/pipeline_reader.h"

namespace wasmq::etl {
namespace pipeline_detail {

const NameTable<FilterType> kFilterTypes = {
    {"Exact", FilterType::kExact},   {"Wildcard", FilterType::kWildcard},
    {"Regex", FilterType::kRegex},   {"Prefix", FilterType::kPrefix},
    {"Suffix", FilterType::kSuffix}, {"Contains", FilterType::kContains},
};
const NameTable<ConditionType> kConditionTypes = {
    {"HeaderValue", ConditionType::kHeaderValue},
    {"PayloadField", ConditionType::kPayloadField},
    {"MessageSize", ConditionType::kMessageSize},
    {"MessageAge", ConditionType::kMessageAge},
};
const NameTable<Operator> kOperators = {
    {"Equals", Operator::kEquals},
    {"NotEquals", Operator::kNotEquals},
    {"GreaterThan", Operator::kGreaterThan},
    {"LessThan", Operator::kLessThan},
    {"GreaterThanOrEqual", Operator::kGreaterThanOrEqual},
    {"LessThanOrEqual", Operator::kLessThanOrEqual},
    {"Contains", Operator::kContains},
    {"StartsWith", Operator::kStartsWith},
    {"EndsWith", Operator::kEndsWith},
    {"Matches", Operator::kMatches},
};
const NameTable<ErrorHandling> kErrorHandlings = {
    {"StopPipeline", ErrorHandling::kStopPipeline},
    {"SkipModule", ErrorHandling::kSkipModule},
    {"RetryWithBackoff", ErrorHandling::kRetryWithBackoff},
    {"SendToDeadLetter", ErrorHandling::kSendToDeadLetter},
};
const NameTable<PipelineMode> kModes = {
    {"inline", PipelineMode::kInline},
    {"stream", PipelineMode::kStream},
};

}  // namespace pipeline_detail

std::string_view filter_type_name(FilterType type) {
  return pipeline_detail::name_in(pipeline_detail::kFilterTypes, type);
}

std::string_view condition_type_name(ConditionType type) {
  return pipeline_detail::name_in(pipeline_detail::kConditionTypes, type);
}

std::string_view operator_name(Operator op) {
  return pipeline_detail::name_in(pipeline_detail::kOperators, op);
}

std::string_view error_handling_name(ErrorHandling strategy) {
  return pipeline_detail::name_in(pipeline_detail::kErrorHandlings, strategy);
}

std::string_view pipeline_mode_name(PipelineMode mode) {
  return pipeline_detail::name_in(pipeline_detail::kModes, mode);
}

}  // namespace wasmq::etl
