// Fuzzes the pipeline document parser (src/etl/pipeline.h): the JSON bodies of POST/PUT
// /pipelines, and the same bodies as RFC 7386 merge patches (PATCH /pipelines/{id}) onto a
// valid pipeline.
//
// Invariants: no crash; a pipeline parse_pipeline accepts comes back equal from
// parse_pipeline(pipeline_to_json(p)).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>

#include "common/json_merge_patch.h"
#include "etl/pipeline.h"
#include "fuzz_check.h"
#include "json_input.h"

using namespace wasmq;
namespace json = boost::json;

namespace {

constexpr const char* kBasePipeline = R"({
  "name": "base", "description": "the PATCH target",
  "stages": [{"name": "s1", "modules": [{"module_id": "m1",
    "topic_filters": [{"pattern": "sensors.*", "type": "wildcard"}]}]}]
})";

void parse_and_round_trip(const json::value& document) {
  etl::PipelineSpec spec;
  if (!etl::parse_pipeline(document, "generated-id", &spec).is_ok()) return;
  const json::value again_json = etl::pipeline_to_json(spec);
  etl::PipelineSpec again;
  const Status again_error = etl::parse_pipeline(again_json, "other-id", &again);
  FUZZ_CHECK(again_error.is_ok(), "pipeline_to_json's document is refused: " +
                                      again_error.field() + ": " + again_error.message() +
                                      " in " + json::serialize(again_json));
  FUZZ_CHECK(again == spec, "round trip changed the pipeline: " + json::serialize(again_json));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto document = fuzz::parse_api_json(data, size);
  if (!document) return 0;
  parse_and_round_trip(*document);

  static const json::value base = json::parse(kBasePipeline);
  json::value patched = base;
  merge_patch(patched, *document);
  parse_and_round_trip(patched);
  return 0;
}
