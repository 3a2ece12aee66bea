// Executor::Run, the failure policy: what a module's failure on a message leads to (the
// pipeline's error_handling), error records, dead letters, and failure records not repeated.
#include "etl/executor_run.h"

#include <boost/json.hpp>
#include <string>

#include "common/log.h"
#include "common/message_json.h"

namespace wasmq::etl {
namespace {

namespace json = boost::json;

}  // namespace

bool Executor::Run::failure_record_not_repeated(const CompiledPipeline& pipeline, size_t input,
                                                const std::string& error) {
  if (!guards_failure_records || !failure_input[input].has_value()) return false;
  ++result.counts.failure_records_not_repeated;
  pipeline_figures->failure_records_not_repeated.fetch_add(1, std::memory_order_relaxed);
  uint64_t suppressed = 0;
  if (call_warnings().allow(pipeline.spec.pipeline_id, 'r', &suppressed)) {
    log::get("etl").warn(
        "stream pipeline {}: failed on a record that is an error record or a dead letter ({} "
        "header): no new error record or dead letter is written for it, so that it cannot go "
        "round: {}{}",
        pipeline.spec.pipeline_id, kFailureRecordHeader, error, suppressed_note(suppressed));
  }
  return true;
}

void Executor::Run::error_record(const CompiledPipeline& pipeline, uint32_t stage,
                                 const std::string& module, const Message& message,
                                 const std::string& error) {
  const EtlDefaults& d = runtime().defaults;
  if (!d.enable_error_topic) return;
  Message copy = message;
  if (copy.value.size() > d.max_error_message_size) copy.value.resize(d.max_error_message_size);
  json::object record{{"pipeline_id", pipeline.spec.pipeline_id},
                      {"module_id", module},
                      {"stage", stage},
                      {"topic", topic},
                      {"error", error},
                      {"timestamp", now_ms()},
                      {"message", message_to_json(copy)}};
  if (copy.value.size() < message.value.size()) {
    record["value_truncated_from_bytes"] = message.value.size();
  }
  RoutedMessage r;
  r.topic = pipeline.spec.error_topic.empty() ? d.error_topic_prefix : pipeline.spec.error_topic;
  r.message.key = pipeline.spec.pipeline_id;
  r.message.value = json::serialize(record);
  r.message.headers = {{"content-type", "application/json"},
                       {std::string(kFailureRecordHeader), "error_record"}};
  r.message.timestamp = now_ms();
  result.error_records.push_back(std::move(r));
}

std::string Executor::Run::fail(const CompiledPipeline& pipeline, const CompiledStage& stage,
                                const ModuleUse& use, const Item& item, const std::string& error,
                                bool retried, bool not_deployed) {
  std::string action = apply_failure(pipeline, stage, use, item, error, retried, not_deployed);
  if (trace == nullptr) log_failure(pipeline, use, error, action, not_deployed);
  return action;
}

void Executor::Run::log_failure(const CompiledPipeline& pipeline, const ModuleUse& use,
                                const std::string& error, std::string_view action,
                                bool not_deployed) {
  uint64_t suppressed = 0;
  if (!call_warnings().allow(pipeline.spec.pipeline_id + '/' + use.spec->module_id,
                             not_deployed ? 'n' : 'f', &suppressed)) {
    return;
  }
  auto& logger = log::get("etl");
  if (not_deployed) {
    logger.warn("pipeline {} waits for module {}: it is not deployed, so its messages on topic "
                "{} are {}{}",
                pipeline.spec.pipeline_id, use.spec->module_id, topic, action,
                suppressed_note(suppressed));
    return;
  }
  std::string where = action == "dead-lettered"
                          ? "dead-lettered to " + dead_letter_topic(pipeline)
                          : std::string(action);
  logger.warn("pipeline {}, module {} on topic {}: {}; {}{}", pipeline.spec.pipeline_id,
              use.spec->module_id, topic, error, where, suppressed_note(suppressed));
}

std::string Executor::Run::apply_failure(const CompiledPipeline& pipeline,
                                         const CompiledStage& stage, const ModuleUse& use,
                                         const Item& item, const std::string& error,
                                         bool retried, bool not_deployed) {
  // Every failure counts, whatever its cause: the call's, a refused route, a missing module.
  ++result.counts.module_failures;
  ModuleFigures& figures = figures_of(stage, use);
  figures.failed.fetch_add(1, std::memory_order_relaxed);
  figures_of_stage(stage).failed.fetch_add(1, std::memory_order_relaxed);
  pipeline_figures->failed.fetch_add(1, std::memory_order_relaxed);
  pipeline_figures->last_failure_ms.store(now_ms(), std::memory_order_relaxed);
  {
    MutexLock lock(pipeline_figures->mutex);
    pipeline_figures->last_error = use.spec->module_id + ": " + error;
  }
  // A failure record that fails again is counted and logged, but writes nothing new: an error
  // record of it, or a dead letter, could come back to this pipeline for ever.
  const bool not_repeated = failure_record_not_repeated(pipeline, item.input, error);
  if (not_deployed) {
    figures.not_deployed.fetch_add(1, std::memory_order_relaxed);
  } else if (!not_repeated) {
    error_record(pipeline, stage.spec->priority, use.spec->module_id, item.message, error);
  }
  auto skipped = [&](const char* why) {
    figures.skipped.fetch_add(1, std::memory_order_relaxed);
    pipeline_figures->skipped.fetch_add(1, std::memory_order_relaxed);
    return std::string(why);
  };
  if (stage.spec->continue_on_error) return skipped("skipped (continue_on_error)");
  Group& group = groups[item.group];
  auto stop = [&] {
    if (group.state == Group::State::kActive) group.state = Group::State::kStopped;
    return std::string("stopped the pipeline: the message goes on as it entered");
  };
  auto dead_letter = [&] {
    if (group.state != Group::State::kDeadLettered) {
      if (dead_letter_topic_fits(pipeline)) {
        figures.dead_lettered.fetch_add(1, std::memory_order_relaxed);
      }
      group.state = Group::State::kDeadLettered;
      group.not_repeated = not_repeated;
      group.error = error;
      group.module_id = use.spec->module_id;
      group.stage_priority = stage.spec->priority;
    }
    return std::string("dead-lettered");
  };
  switch (pipeline.spec.error_handling) {
    case ErrorHandling::kSkipModule:
      return skipped("skipped (SkipModule)");
    case ErrorHandling::kStopPipeline:
      return stop();
    case ErrorHandling::kRetryWithBackoff:
      (void)retried;
      return pipeline.spec.dead_letter_config ? dead_letter() : stop();
    case ErrorHandling::kSendToDeadLetter:
      return dead_letter();
  }
  return "skipped";
}

std::string Executor::Run::dead_letter_topic(const CompiledPipeline& pipeline) const {
  const DeadLetterConfig config = pipeline.spec.dead_letter_config.value_or(DeadLetterConfig{});
  return config.topic_prefix + "." + topic;
}

bool Executor::Run::dead_letter_topic_fits(const CompiledPipeline& pipeline) const {
  return dead_letter_topic(pipeline).size() <= kMaxTopicLength;
}

void Executor::Run::dead_letter(const CompiledPipeline& pipeline, Group& g) {
  const DeadLetterConfig config = pipeline.spec.dead_letter_config.value_or(DeadLetterConfig{});
  RoutedMessage r;
  r.topic = dead_letter_topic(pipeline);
  // No topic can take it: storing it fails, and the producer is told the real cause (the
  // broker keeps the first error of a message).
  const bool topic_too_long = !dead_letter_topic_fits(pipeline);
  r.message = std::move(g.entry.message);
  if (r.message.value.size() > config.max_message_size) {
    r.message.set_header("etl.truncated_from_bytes", std::to_string(r.message.value.size()));
    r.message.value.resize(config.max_message_size);
  }
  if (config.include_error_context) {
    r.message.set_header("etl.error", g.error);
    r.message.set_header("etl.pipeline_id", pipeline.spec.pipeline_id);
    r.message.set_header("etl.module_id", g.module_id);
    r.message.set_header("etl.stage_priority", std::to_string(g.stage_priority));
    r.message.set_header("etl.source_topic", topic);
    r.message.set_header("etl.failed_at", std::to_string(now_ms()));
  }
  InputOutcome& outcome = result.outcomes[g.input];
  if (g.not_repeated) {
    // The record stays where it was read (a stream pipeline leaves its source as it is), in an
    // error or dead-letter topic or made from a record there: it is not lost.
    outcome.error = g.error;
    outcome.pipeline_id = pipeline.spec.pipeline_id;
    outcome.module_id = g.module_id;
    return;
  }
  r.message.set_header(std::string(kFailureRecordHeader), "dead_letter");
  outcome.error = topic_too_long
                      ? "dead-letter topic \"" + r.topic + "\" would be " +
                            std::to_string(r.topic.size()) + " characters, more than " +
                            std::to_string(kMaxTopicLength) + " (the module failed: " + g.error +
                            ")"
                      : g.error;
  outcome.dead_letters.push_back(std::move(r));
  outcome.pipeline_id = pipeline.spec.pipeline_id;
  outcome.module_id = g.module_id;
}

}  // namespace wasmq::etl
