#include "http/admin_api.h"

#include <algorithm>
#include <boost/json.hpp>

#include "common/message_json.h"
#include "etl/compile_check.h"
#include "etl/match.h"
#include "etl/plan.h"
#include "common/handoff.h"
#include "http/json_response.h"
#include "http/produce_body.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

std::string_view origin_name(etl::PipelineOrigin origin) {
  return origin == etl::PipelineOrigin::kFile ? "file" : "api";
}

Response change_error_response(const Status& error) {
  HttpStatus status = http_status_for(error.code());
  // A document that parses but breaks a rule of the model is 422; one that is malformed, 400.
  std::string_view code = error.code() == StatusCode::kInvalidArgument
                              ? "invalid_pipeline"
                              : status_code_name(error.code());
  if (error.code() == StatusCode::kInvalidArgument) status = HttpStatus::unprocessable_entity;
  return error_response(status, code, error.message(), error.field());
}

json::object message_json(const Message& m) { return message_to_json(m); }

json::array messages_json(const std::vector<Message>& messages) {
  json::array a;
  for (const auto& m : messages) a.push_back(message_json(m));
  return a;
}

json::object routed_json(const etl::RoutedMessage& r) {
  json::object o{{"topic", r.topic}, {"message", message_json(r.message)}};
  if (r.partition) o["partition"] = *r.partition;
  return o;
}

json::object step_json(const etl::TraceStep& s) {
  json::object o{{"pipeline_id", s.pipeline_id}, {"stage_priority", s.stage_priority},
                 {"module_id", s.module_id},     {"matched", s.matched},
                 {"decided_by", s.decided_by},   {"ran", s.ran}};
  if (s.ran) {
    o["resolved_module_id"] = s.resolved_id;
    o["time_ms"] = s.time_ms;
    if (s.error.empty()) {
      o["output"] = messages_json(s.output);
      o["should_continue"] = s.should_continue;
    } else {
      o["error"] = s.error;
      o["action"] = s.action;
    }
  }
  return o;
}

class AdminApi {
 public:
  AdminApi(etl::Orchestrator& etl, const broker::StreamPipelines* streams,
           std::shared_ptr<const etl::ModuleSigners> signers,
           std::optional<etl::TopicMatcher> sources, bool every_source)
      : etl_(etl),
        streams_(streams),
        signers_(std::move(signers)),
        sources_(std::move(sources)),
        every_source_(every_source) {}

  // --- modules ---

  awaitable<Response> upload_module(Request& req) {
    if (!every_source_) {
      std::string source = module_source(req);
      if (!sources_ || !sources_->matches(source)) {
        co_return error_response(
            HttpStatus::forbidden, "source_not_allowed",
            "module uploads from source \"" + source +
                "\" are not allowed (etl.allowed_module_sources; the source is the token's name, "
                "or the client's address without tokens)");
      }
    }
    std::string name(req.header("X-Module-Name"));
    std::string version(req.header("X-Module-Version"));
    if (name.empty()) {
      co_return error_response(HttpStatus::bad_request, "invalid_argument",
                               "the X-Module-Name header is required", "X-Module-Name");
    }
    if (version.empty()) {
      co_return error_response(HttpStatus::bad_request, "invalid_argument",
                               "the X-Module-Version header is required", "X-Module-Version");
    }
    if (std::string_view type = req.header("Content-Type"); type.starts_with("multipart/")) {
      co_return error_response(
          HttpStatus::bad_request, "invalid_argument",
          "send the module's .wasm bytes as the request body (curl --data-binary @module.wasm -H "
          "'Content-Type: application/octet-stream'), not as a multipart form (curl -F)",
          "Content-Type");
    }
    if (req.body().empty()) {
      co_return error_response(HttpStatus::bad_request, "invalid_module",
                               "the body must be the module's .wasm binary; it is empty");
    }
    std::vector<uint8_t> binary(req.body().begin(), req.body().end());
    std::string signed_by;
    if (signers_) {
      // On the I/O thread: one SHA-512 pass over the module (tens of ms for the largest).
      etl::SignatureCheck check =
          signers_->verify(name, version, binary, req.header("X-Module-Signature"));
      using Kind = etl::SignatureCheck::Kind;
      if (check.kind == Kind::kMissing) {
        co_return error_response(HttpStatus::bad_request, "signature_required", check.message,
                                 "X-Module-Signature");
      }
      if (check.kind == Kind::kMalformed) {
        co_return error_response(HttpStatus::bad_request, "invalid_signature", check.message,
                                 "X-Module-Signature");
      }
      if (check.kind == Kind::kUntrusted) {
        co_return error_response(HttpStatus::forbidden, "untrusted_signature", check.message,
                                 "X-Module-Signature");
      }
      signed_by = check.key_id;
    }
    using Uploaded = Result<std::shared_ptr<const etl::ModuleRecord>>;
    auto [sender, receiver] = make_handoff<Uploaded>();
    etl_.upload_module(std::move(name), std::move(version), std::move(binary), signed_by,
                       [sender = sender](Uploaded r) { sender.send(std::move(r)); });
    auto received = co_await receiver.receive();
    if (!received.is_ok()) co_return status_response(received.status());
    Uploaded& uploaded = *received;
    if (!uploaded.is_ok()) {
      const Status& s = uploaded.status();
      // A valid module refused for what compiling it costs (etl.module_compile_timeout_ms,
      // etl.module_compile_max_memory_bytes): 422, not the 400 of a malformed one.
      if (s.code() == StatusCode::kLimitExceeded &&
          (s.field() == etl::kCompileTimeoutKey || s.field() == etl::kCompileMaxMemoryKey)) {
        co_return error_response(HttpStatus::unprocessable_entity, "compile_limit_exceeded",
                                 s.message());
      }
      if (s.code() == StatusCode::kUnavailable) {
        Response busy =
            error_response(HttpStatus::service_unavailable, "uploads_busy", s.message());
        busy.set(boost::beast::http::field::retry_after, "1");
        co_return busy;
      }
      // The name and version arrive as headers: the field names the header.
      std::string_view field = s.field() == "version" ? "X-Module-Version"
                               : s.field() == "name"  ? "X-Module-Name"
                                                      : "";
      co_return status_response(s, field);
    }
    const etl::ModuleRecord& record = **uploaded;
    co_return json_response(HttpStatus::created, json::object{{"status", "uploaded"},
                                                              {"module_id", record.id},
                                                              {"size_bytes", record.size_bytes},
                                                              {"sha256", record.sha256}});
  }

  json::object module_entry(const etl::ModuleRecord& record) {
    json::object o = etl::module_to_json(record);
    json::array used;
    for (const auto& id : etl_.used_by(record)) used.push_back(json::string(id));
    o["used_by"] = std::move(used);
    return o;
  }

  awaitable<Response> list_modules(Request&) {
    json::array modules;
    uint64_t total = 0;
    auto records = etl_.modules().list();
    for (const auto& r : records) {
      modules.push_back(module_entry(*r));
      total += r->size_bytes;
    }
    co_return json_response(
        HttpStatus::ok,
        json::object{{"modules", std::move(modules)},
                     {"storage_info", json::object{{"path", etl_.modules().dir().string()},
                                                   {"total_bytes", total},
                                                   {"module_count", records.size()}}}});
  }

  awaitable<Response> get_module(Request& req) {
    auto record = etl_.modules().resolve(req.path_param("id"));
    if (!record) {
      co_return error_response(HttpStatus::not_found, "not_found",
                               "module " + std::string(req.path_param("id")) + " does not exist");
    }
    co_return json_response(HttpStatus::ok, module_entry(*record));
  }

  awaitable<Response> delete_module(Request& req) {
    std::string id(req.path_param("id"));
    if (Status s = etl_.delete_module(id); !s.is_ok()) co_return status_response(s);
    co_return json_response(HttpStatus::ok, json::object{{"status", "deleted"}, {"module_id", id}});
  }

  // --- pipelines ---

  // The modules `spec` names that no deployed module resolves, in stage order, once each.
  std::vector<std::string> missing_modules(const etl::PipelineSpec& spec) {
    std::vector<std::string> missing;
    for (const auto& stage : spec.stages) {
      for (const auto& m : stage.modules) {
        if (!etl_.modules().resolve(m.module_id) &&
            std::find(missing.begin(), missing.end(), m.module_id) == missing.end()) {
          missing.push_back(m.module_id);
        }
      }
    }
    return missing;
  }

  // "stopped", "waiting_for_modules" (enabled, some module not deployed) or "running".
  static std::string_view state_of(const etl::PipelineSpec& spec,
                                   const std::vector<std::string>& missing) {
    if (!spec.enabled) return "stopped";
    return missing.empty() ? "running" : "waiting_for_modules";
  }

  json::object pipeline_entry(const etl::PipelineEntry& entry) {
    json::object o = etl::pipeline_to_json(entry.spec);
    o["origin"] = origin_name(entry.origin);
    o["state"] = state_of(entry.spec, missing_modules(entry.spec));
    return o;
  }

  // The answer to a change: with `warnings` naming the modules the pipeline waits for.
  json::object change_answer(const etl::PipelineSpec& spec, std::string_view status,
                             bool with_enabled) {
    json::object o{{"pipeline_id", spec.pipeline_id}, {"status", status}};
    if (with_enabled) o["enabled"] = spec.enabled;
    const auto missing = missing_modules(spec);
    o["state"] = state_of(spec, missing);
    if (!missing.empty()) {
      json::array warnings;
      for (const auto& m : missing) {
        warnings.push_back(json::string(
            "module \"" + m + "\" is not deployed: the pipeline waits for it, and its messages "
            "fail at that module as its error_handling says until it is deployed"));
      }
      o["warnings"] = std::move(warnings);
    }
    return o;
  }

  static std::optional<Response> parse_body(Request& req, json::value* out) {
    JsonBody body = parse_json_body(req.body());
    if (!body.is_ok()) return std::move(*body.error);
    *out = std::move(body.value);
    return std::nullopt;
  }

  awaitable<Response> create_pipeline(Request& req) {
    json::value doc;
    if (auto error = parse_body(req, &doc)) co_return std::move(*error);
    auto result = etl_.create_pipeline(doc);
    if (!result.is_ok()) co_return change_error_response(result.status());
    co_return json_response(HttpStatus::created, change_answer(*result, "created", false));
  }

  awaitable<Response> list_pipelines(Request&) {
    json::array list;
    for (const auto& entry : etl_.pipelines()) list.push_back(pipeline_entry(entry));
    co_return json_response(HttpStatus::ok, json::object{{"pipelines", std::move(list)}});
  }

  std::optional<etl::PipelineEntry> find(Request& req, Response* not_found) {
    auto entry = etl_.find_pipeline(req.path_param("id"));
    if (!entry) {
      *not_found =
          error_response(HttpStatus::not_found, "not_found",
                         "pipeline \"" + std::string(req.path_param("id")) + "\" does not exist");
    }
    return entry;
  }

  awaitable<Response> get_pipeline(Request& req) {
    Response missing;
    auto entry = find(req, &missing);
    if (!entry) co_return missing;
    co_return json_response(HttpStatus::ok, pipeline_entry(*entry));
  }

  Response changed(const Result<etl::PipelineSpec>& result, std::string_view status) {
    if (!result.is_ok()) return change_error_response(result.status());
    return json_response(HttpStatus::ok, change_answer(result.value(), status, true));
  }

  awaitable<Response> replace_pipeline(Request& req) {
    json::value doc;
    if (auto error = parse_body(req, &doc)) co_return std::move(*error);
    bool was_changed = true;
    auto result = etl_.replace_pipeline(req.path_param("id"), doc, &was_changed);
    co_return changed(result, was_changed ? "updated" : "unchanged");
  }

  awaitable<Response> patch_pipeline(Request& req) {
    json::value doc;
    if (auto error = parse_body(req, &doc)) co_return std::move(*error);
    bool was_changed = true;
    auto result = etl_.patch_pipeline(req.path_param("id"), doc, &was_changed);
    co_return changed(result, was_changed ? "updated" : "unchanged");
  }

  awaitable<Response> delete_pipeline(Request& req) {
    std::string id(req.path_param("id"));
    if (Status s = etl_.delete_pipeline(id); !s.is_ok()) co_return status_response(s);
    co_return json_response(HttpStatus::ok,
                            json::object{{"pipeline_id", id}, {"status", "deleted"}});
  }

  awaitable<Response> start_pipeline(Request& req) {
    co_return changed(etl_.set_enabled(req.path_param("id"), true), "started");
  }

  awaitable<Response> stop_pipeline(Request& req) {
    co_return changed(etl_.set_enabled(req.path_param("id"), false), "stopped");
  }

  awaitable<Response> pipeline_status(Request& req) {
    Response not_found;
    auto entry = find(req, &not_found);
    if (!entry) co_return not_found;
    const etl::PipelineSpec& spec = entry->spec;
    size_t modules = 0;
    for (const auto& stage : spec.stages) modules += stage.modules.size();
    const auto missing = missing_modules(spec);
    json::array missing_json;
    for (const auto& m : missing) missing_json.push_back(json::string(m));
    json::object o{{"pipeline_id", spec.pipeline_id},
                   {"name", spec.name},
                   {"state", state_of(spec, missing)},
                   {"enabled", spec.enabled},
                   {"mode", spec.mode == etl::PipelineMode::kInline ? "inline" : "stream"},
                   {"origin", origin_name(entry->origin)},
                   {"stages", spec.stages.size()},
                   {"modules", modules},
                   {"modules_not_deployed", std::move(missing_json)},
                   {"circuit_breakers", breakers_json(spec)}};
    if (spec.mode == etl::PipelineMode::kStream) {
      o["source_topic"] = spec.source_topic;
      o["destination_topic"] = spec.destination_topic;
      if (auto stream = streams_ ? streams_->status(spec.pipeline_id) : std::nullopt) {
        json::object positions;
        for (const auto& [partition, offset] : stream->positions) {
          positions[std::to_string(partition)] = offset;
        }
        o["running"] = stream->running;
        o["positions"] = std::move(positions);
        o["lag"] = stream->lag;
        o["batches"] = stream->batches;
        o["messages_in"] = stream->messages_in;
        o["records_out"] = stream->records_out;
        if (!stream->last_error.empty()) o["last_error"] = stream->last_error;
      }
    }
    co_return json_response(HttpStatus::ok, o);
  }

  // The breakers of the pipeline's module uses (the ones that have run), with its settings.
  json::object breakers_json(const etl::PipelineSpec& spec) {
    const etl::CircuitBreakerConfig& c = spec.circuit_breaker;
    const auto now = std::chrono::steady_clock::now();
    json::array modules;
    // Per module use, the breaker of each version that has run (Executor::bind's keys).
    for (const auto& stage : spec.stages) {
      for (size_t i = 0; i < stage.modules.size(); ++i) {
        const std::string prefix =
            etl::module_use_key({}, spec.pipeline_id, stage.priority, i) + "@";
        for (const auto& [key, b] : etl_.runtime().breakers.list(prefix, now)) {
          modules.push_back(json::object{{"stage_priority", stage.priority},
                                         {"module_id", stage.modules[i].module_id},
                                         {"resolved_id", key.substr(prefix.size())},
                                         {"state", b.state},
                                         {"consecutive_failures", b.consecutive_failures},
                                         {"open_remaining_ms", b.open_remaining_ms},
                                         {"times_opened", b.times_opened}});
        }
      }
    }
    return json::object{{"failure_threshold", c.failure_threshold},
                        {"open_ms", c.open_ms},
                        {"count_module_errors", c.count_module_errors},
                        {"modules", std::move(modules)}};
  }

  // The topic a dry run of an inline pipeline uses when the request names none: the one topic
  // its modules' Exact filters name, when there is exactly one; else "test".
  static std::string default_test_topic(const etl::PipelineSpec& spec) {
    std::vector<std::string> exact;
    for (const auto& stage : spec.stages) {
      for (const auto& m : stage.modules) {
        for (const auto& f : m.topic_filters) {
          if (f.filter_type == etl::FilterType::kExact && !f.negate && f.case_sensitive &&
              std::find(exact.begin(), exact.end(), f.pattern) == exact.end()) {
            exact.push_back(f.pattern);
          }
        }
      }
    }
    return exact.size() == 1 ? exact[0] : "test";
  }

  // Whether some module of `spec` would run on `topic` by its topic filters.
  static bool any_module_matches(const etl::PipelineSpec& spec, std::string_view topic) {
    for (const auto& stage : spec.stages) {
      for (const auto& m : stage.modules) {
        auto matcher = etl::TopicMatcher::compile(m.topic_filters);
        if (matcher.is_ok() && matcher->matches(topic)) return true;
      }
    }
    return false;
  }

  // POST /api/v1/etl/pipelines/{id}/test: {"topic": "...", "messages": [...]}, or one message
  // object (with "topic" beside its fields), or an array of messages. Without a topic: a stream
  // pipeline's source_topic, else default_test_topic(). A stream pipeline's outputs to its
  // input topic are shown going to its destination_topic, as they would. When no module's
  // filters match the topic, `warnings` says so (every message would pass untouched).
  awaitable<Response> test_pipeline(Request& req) {
    json::value doc;
    if (auto error = parse_body(req, &doc)) co_return std::move(*error);
    const auto entry = etl_.find_pipeline(req.path_param("id"));
    const bool stream = entry && entry->spec.mode == etl::PipelineMode::kStream;
    std::string topic = !entry                           ? std::string("test")
                        : stream ? entry->spec.source_topic
                                 : default_test_topic(entry->spec);
    if (json::object* o = doc.if_object()) {
      if (const json::value* t = o->if_contains("topic")) {
        if (!t->is_string()) {
          co_return error_response(HttpStatus::bad_request, "invalid_message",
                                   "topic: must be a string", "topic");
        }
        topic = std::string(t->get_string());
        o->erase("topic");
      }
    }
    auto listed = read_produce_body(doc, now_ms());
    if (!listed.is_ok()) co_return invalid_message_response(listed.status());
    std::vector<etl::InputMessage> inputs(listed->size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      inputs[i].message = listed->views.messages[i].to_message();
      inputs[i].partition = listed->partitions[i];
    }
    using Ran = Result<std::pair<etl::BatchResult, etl::Trace>>;
    auto [sender, receiver] = make_handoff<Ran>();
    etl_.dry_run(req.path_param("id"), topic, std::move(inputs),
                 [sender = sender](Ran r) { sender.send(std::move(r)); });
    auto received = co_await receiver.receive();
    if (!received.is_ok()) co_return status_response(received.status());
    if (!received->is_ok()) co_return status_response(received->status());
    auto& [result, trace] = received->value();
    json::array results;
    for (size_t i = 0; i < result.outcomes.size(); ++i) {
      const etl::InputOutcome& out = result.outcomes[i];
      json::object r{{"input", i}};
      switch (out.kind) {
        case etl::InputOutcome::Kind::kPass:
          r["status"] = "stored";
          break;
        case etl::InputOutcome::Kind::kFiltered:
          r["status"] = "filtered";
          r["pipeline_id"] = out.pipeline_id;
          r["module_id"] = out.module_id;
          break;
        case etl::InputOutcome::Kind::kDeadLettered:
          r["status"] = "dead_lettered";
          r["error"] = out.error;
          break;
      }
      json::array outputs, dead;
      for (const auto& m : out.outputs) {
        json::object o = routed_json(m);
        if (stream && m.topic == topic) o["topic"] = entry->spec.destination_topic;
        outputs.push_back(std::move(o));
      }
      for (const auto& m : out.dead_letters) dead.push_back(routed_json(m));
      r["outputs"] = std::move(outputs);
      if (!dead.empty()) r["dead_letters"] = std::move(dead);
      json::array steps;
      for (const auto& s : trace.per_input[i]) steps.push_back(step_json(s));
      r["trace"] = std::move(steps);
      results.push_back(std::move(r));
    }
    json::array errors;
    for (const auto& e : result.error_records) errors.push_back(routed_json(e));
    json::object answer{{"pipeline_id", req.path_param("id")},
                        {"topic", topic},
                        {"stored", false},
                        {"results", std::move(results)},
                        {"error_records", std::move(errors)}};
    if (entry && !any_module_matches(entry->spec, topic)) {
      answer["warnings"] = json::array{json::string(
          "no module's topic_filters match topic \"" + topic +
          "\": every message passes unchanged; give the topic the messages are produced to "
          "(\"topic\", or wasmq pipeline test --topic)")};
    }
    co_return json_response(HttpStatus::ok, answer);
  }

 private:
  etl::Orchestrator& etl_;
  const broker::StreamPipelines* streams_;
  const std::shared_ptr<const etl::ModuleSigners> signers_;  // null: no signatures needed
  const std::optional<etl::TopicMatcher> sources_;           // none: no source is allowed
  const bool every_source_;  // allowed_module_sources has "*": sources_ is not consulted
};

}  // namespace

static Right admin_right(Verb verb, std::string_view pattern) {
  if (pattern == "/health" || pattern == "/metrics") return Right::kOpen;
  if (verb == Verb::get) return Right::kView;
  if (pattern.starts_with("/api/v1/etl/") || pattern == "/api/v1/config/reload") {
    return Right::kManageEtl;
  }
  return Right::kAdmin;
}

RouteOptions admin_route(Verb verb, std::string_view pattern) {
  RouteOptions options;
  options.right = admin_right(verb, pattern);
  options.audited = verb != Verb::get;
  return options;
}

std::string module_source(const Request& request) {
  return request.principal() ? request.principal()->name : request.remote_address();
}

Status add_admin_api(Router& router, etl::Orchestrator& etl, const broker::StreamPipelines* streams,
                     AdminApiOptions options) {
  std::vector<etl::TopicFilterSpec> patterns;
  bool every_source = false;
  for (size_t i = 0; i < options.allowed_module_sources.size(); ++i) {
    const std::string& pattern = options.allowed_module_sources[i];
    if (pattern.empty()) {
      return invalid_argument("etl.allowed_module_sources[" + std::to_string(i) + "]: empty");
    }
    if (pattern == "*") every_source = true;
    patterns.push_back({etl::FilterType::kWildcard, pattern, true, false});
  }
  // An empty list allows no source (a TopicMatcher without filters would match every one).
  std::optional<etl::TopicMatcher> sources;
  if (!patterns.empty()) {
    auto compiled = etl::TopicMatcher::compile(patterns);
    if (!compiled.is_ok()) return compiled.status().with_context("etl.allowed_module_sources");
    sources = std::move(*compiled);
  }
  auto api = std::make_shared<AdminApi>(etl, streams, std::move(options.signers),
                                        std::move(sources), every_source);
  auto bind = [api](awaitable<Response> (AdminApi::*method)(Request&)) {
    return [api, method](Request& req) { return ((*api).*method)(req); };
  };
  if (Status s = add_admin_routes<AdminApi>(
          router, api,
          {
              {Verb::get, "/api/v1/etl/modules", &AdminApi::list_modules},
              {Verb::get, "/api/v1/etl/modules/{id}", &AdminApi::get_module},
              {Verb::delete_, "/api/v1/etl/modules/{id}", &AdminApi::delete_module},
              {Verb::post, "/api/v1/etl/pipelines", &AdminApi::create_pipeline},
              {Verb::get, "/api/v1/etl/pipelines", &AdminApi::list_pipelines},
              {Verb::get, "/api/v1/etl/pipelines/{id}", &AdminApi::get_pipeline},
              {Verb::put, "/api/v1/etl/pipelines/{id}", &AdminApi::replace_pipeline},
              {Verb::patch, "/api/v1/etl/pipelines/{id}", &AdminApi::patch_pipeline},
              {Verb::delete_, "/api/v1/etl/pipelines/{id}", &AdminApi::delete_pipeline},
              {Verb::post, "/api/v1/etl/pipelines/{id}/start", &AdminApi::start_pipeline},
              {Verb::post, "/api/v1/etl/pipelines/{id}/stop", &AdminApi::stop_pipeline},
              {Verb::get, "/api/v1/etl/pipelines/{id}/status", &AdminApi::pipeline_status},
              {Verb::post, "/api/v1/etl/pipelines/{id}/test", &AdminApi::test_pipeline},
          });
      !s.is_ok()) {
    return s;
  }
  RouteOptions upload = admin_route(Verb::post, "/api/v1/etl/modules");
  upload.max_body_bytes = kMaxModuleUploadBytes;
  if (Status s =
          router.add(Verb::post, "/api/v1/etl/modules", bind(&AdminApi::upload_module), upload);
      !s.is_ok()) {
    return s;
  }
  auto health = [](Request&) -> awaitable<Response> {
    co_return json_response(HttpStatus::ok, json::object{{"status", "ok"}});
  };
  return router.add(Verb::get, "/health", health, admin_route(Verb::get, "/health"));
}

}  // namespace wasmq::http
