// The orchestrator: uploads are compiled before they are stored; pipeline changes are applied
// whole (persisted, published) or not at all; file pipelines are read-only; API pipelines and
// modules survive a restart; a bare module name follows the newest version; dry runs trace.
#include "etl/orchestrator.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "common/message_json.h"
#include "module_files.h"
#include "temp_dir.h"
#include "wasm/engine.h"
#include "wasm_builder.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using testing::read_module;

constexpr auto kWait = std::chrono::seconds(30);

// Waits for a callback's value; nullopt (and a failure) when it does not come.
template <typename T>
std::optional<T> wait_for(std::future<T>& future) {
  if (future.wait_for(kWait) != std::future_status::ready) {
    ADD_FAILURE() << "the callback did not run within " << kWait.count() << " s";
    return std::nullopt;
  }
  return future.get();
}

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// An inline pipeline of one stage with one module, optionally with topic filters.
json::value one_module_pipeline(std::string_view id, std::string_view module_id,
                                std::string_view topic_filters = "[]") {
  // Without an id, no name either: the pipeline gets a random id (names are unique).
  json::value document = json::parse(R"({"stages": [
      {"priority": 0, "modules": [{"module_id": "", "topic_filters": )" +
                                     std::string(topic_filters) + "}]}]}");
  if (!id.empty()) {
    document.as_object()["pipeline_id"] = id;
    document.as_object()["name"] = id;
  }
  document.at_pointer("/stages/0/modules/0/module_id") = module_id;
  return document;
}

Message message(std::string value = "hello") {
  Message m;
  m.key = "k";
  m.value = std::move(value);
  m.headers = {{"source", "test"}};
  m.timestamp = now_ms();
  return m;
}

std::vector<std::string> ids_of(const std::vector<PipelineEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.spec.pipeline_id);
  return out;
}

// The ids of the pipelines in the plan for `topic`.
std::vector<std::string> planned(const Configuration& configuration, std::string_view topic) {
  std::vector<std::string> out;
  for (const auto& p : configuration.plan_for(topic)->pipelines) {
    out.push_back(p.pipeline->spec.pipeline_id);
  }
  return out;
}

class OrchestratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(wasm::initialize_engine().is_ok()); }

  void SetUp() override {
    root_ = testing::test_temp_dir("orchestrator");
    fs::remove_all(root_);
    options_.modules_path = root_ / "modules";
    options_.pipelines_path = root_ / "pipelines";
    options_.workers = 1;
    ASSERT_FALSE(read_module("passthrough").empty()) << "test modules were not built";
  }

  void TearDown() override {
    orchestrator_.reset();
    fs::remove_all(root_);
  }

  Result<std::unique_ptr<Orchestrator>> try_open(const json::array& file_pipelines = {}) {
    warnings_.clear();
    return Orchestrator::open(options_, file_pipelines, &warnings_);
  }

  // (Re)opens the orchestrator; the previous one is closed first.
  void open(const json::array& file_pipelines = {}) {
    orchestrator_.reset();
    auto opened = try_open(file_pipelines);
    ASSERT_TRUE(opened.is_ok()) << opened.status().message();
    orchestrator_ = std::move(*opened);
  }

  Result<std::shared_ptr<const ModuleRecord>> upload(std::string name, std::string version,
                                                     std::vector<uint8_t> binary) {
    std::promise<Result<std::shared_ptr<const ModuleRecord>>> done;
    auto future = done.get_future();
    orchestrator_->upload_module(
        std::move(name), std::move(version), std::move(binary), "",
        [&done](Result<std::shared_ptr<const ModuleRecord>> r) { done.set_value(std::move(r)); });
    auto result = wait_for(future);
    if (!result) return Status(StatusCode::kInternal, "no answer");
    return std::move(*result);
  }

  // Uploads the test module `file` (tests/modules, examples) as name@version.
  void upload_ok(const std::string& name, const std::string& version, const std::string& file) {
    auto r = upload(name, version, read_module(file));
    ASSERT_TRUE(r.is_ok()) << name << "@" << version << ": " << r.status().message();
  }

  PipelineSpec create_ok(const json::value& document) {
    auto r = orchestrator_->create_pipeline(document);
    if (!r.is_ok()) {
      ADD_FAILURE() << "refused: " << r.status().message();
      return {};
    }
    return *r;
  }

  static Status error_of(const Result<PipelineSpec>& r) {
    if (r.is_ok()) {
      ADD_FAILURE() << "accepted: " << json::serialize(pipeline_to_json(r.value()));
      return {};
    }
    return r.status();
  }

  // Runs the live plan for `topic` on `inputs`.
  BatchResult process(const std::string& topic, std::vector<Message> messages) {
    auto configuration = orchestrator_->configuration();
    auto plan = configuration->plan_for(topic);
    std::vector<InputMessage> inputs;
    for (auto& m : messages) inputs.push_back({std::move(m), std::nullopt});
    std::promise<BatchResult> done;
    auto future = done.get_future();
    orchestrator_->process(configuration, plan, topic, std::move(inputs),
                           [&done](BatchResult r) { done.set_value(std::move(r)); });
    return wait_for(future).value_or(BatchResult{});
  }

  // The value of header `name` of the single output of a one-message batch on `topic`.
  std::string header_after(const std::string& topic, const std::string& name) {
    BatchResult r = process(topic, {message()});
    if (r.outcomes.size() != 1 || r.outcomes[0].outputs.size() != 1) {
      ADD_FAILURE() << "expected one output";
      return "(no output)";
    }
    const std::string* value = r.outcomes[0].outputs[0].message.header(name);
    return value ? *value : "(absent)";
  }

  Result<std::pair<BatchResult, Trace>> dry_run(std::string_view id, const std::string& topic,
                                                std::vector<Message> messages) {
    std::vector<InputMessage> inputs;
    for (auto& m : messages) inputs.push_back({std::move(m), std::nullopt});
    std::promise<Result<std::pair<BatchResult, Trace>>> done;
    auto future = done.get_future();
    orchestrator_->dry_run(
        id, topic, std::move(inputs),
        [&done](Result<std::pair<BatchResult, Trace>> r) { done.set_value(std::move(r)); });
    auto result = wait_for(future);
    if (!result) return Status(StatusCode::kInternal, "no answer");
    return std::move(*result);
  }

  fs::path root_;
  OrchestratorOptions options_;
  std::vector<std::string> warnings_;
  std::unique_ptr<Orchestrator> orchestrator_;
};

// --- Modules -------------------------------------------------------------------------------

TEST_F(OrchestratorTest, UploadStoresAndCompilesTheModule) {
  open();
  auto r = upload("enricher", "1.0.0", read_module("passthrough"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ((*r)->id, "enricher-v1.0.0");
  EXPECT_EQ((*r)->sha256, sha256_hex(read_module("passthrough")));
  EXPECT_EQ(orchestrator_->modules().find("enricher-v1.0.0"), *r);
  EXPECT_EQ(files_in(options_.modules_path),
            (std::vector<std::string>{"enricher-v1.0.0.json", "enricher-v1.0.0.wasm"}));

  auto again = upload("enricher", "1.0.0", read_module("passthrough"));
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
}

TEST_F(OrchestratorTest, UploadRefusesAModuleTheEngineCannotCompileAndStoresNothing) {
  open();
  // Structure and ABI intact (inspect_module accepts it), a function body invalid: i32.add on
  // an empty stack. Only the compilation finds it.
  std::vector<uint8_t> invalid = testing::WasmBuilder::abi_module().build();
  ASSERT_EQ(invalid[invalid.size() - 3], 0x41);  // the last body is "i32.const 0; end"
  invalid[invalid.size() - 3] = 0x6A;            // i32.add
  invalid[invalid.size() - 2] = 0x01;            // nop
  ASSERT_TRUE(wasm::inspect_module(invalid).is_ok());

  auto r = upload("broken", "1.0.0", invalid);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModule);
  EXPECT_NE(r.status().message().find("Compiling function"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(files_in(options_.modules_path).empty());
  EXPECT_FALSE(orchestrator_->modules().find("broken-v1.0.0"));

  auto abi = upload("no-process", "1.0.0", read_module("missing_export"));
  ASSERT_FALSE(abi.is_ok());
  EXPECT_EQ(abi.status().code(), StatusCode::kInvalidModule);
  EXPECT_NE(abi.status().message().find("missing export process_message"), std::string::npos);
  EXPECT_TRUE(files_in(options_.modules_path).empty());
}

// --- Pipelines from the API ----------------------------------------------------------------

TEST_F(OrchestratorTest, CreateGeneratesAnIdPersistsAndPublishes) {
  open();
  auto before = orchestrator_->configuration();
  EXPECT_TRUE(before->plan_for("orders.eu")->empty());

  PipelineSpec spec = create_ok(
      one_module_pipeline("", "m", R"([{"filter_type": "Prefix", "pattern": "orders."}])"));
  EXPECT_TRUE(std::regex_match(spec.pipeline_id, std::regex("pipeline-[0-9a-f]{8}")))
      << spec.pipeline_id;
  ASSERT_EQ(spec.stages.size(), 1u);
  EXPECT_EQ(spec.stages[0].modules[0].module_id, "m");

  const fs::path file = options_.pipelines_path / (spec.pipeline_id + ".json");
  ASSERT_TRUE(fs::exists(file));
  PipelineSpec persisted;
  ASSERT_TRUE(parse_pipeline(json::parse(file_text(file)), "unused", &persisted).is_ok());
  EXPECT_EQ(persisted, spec);

  auto after = orchestrator_->configuration();
  EXPECT_NE(after, before);
  EXPECT_EQ(planned(*after, "orders.eu"), std::vector<std::string>{spec.pipeline_id});
  EXPECT_TRUE(planned(*after, "payments").empty()) << "the topic filter leaves it out";
  EXPECT_TRUE(before->plan_for("orders.eu")->empty()) << "the old snapshot is unchanged";

  ASSERT_EQ(orchestrator_->pipelines().size(), 1u);
  EXPECT_EQ(orchestrator_->pipelines()[0].origin, PipelineOrigin::kApi);
  EXPECT_EQ(orchestrator_->find_pipeline(spec.pipeline_id)->spec, spec);

  PipelineSpec second = create_ok(one_module_pipeline("", "m"));
  EXPECT_NE(second.pipeline_id, spec.pipeline_id);
  EXPECT_EQ(planned(*orchestrator_->configuration(), "orders.eu").size(), 2u);
}

// A document without pipeline_id is named by its name: applying it again names the same
// pipeline (no duplicate), and a replace that changes nothing says so and writes nothing.
TEST_F(OrchestratorTest, ADocumentWithoutAnIdIsNamedByItsNameAndIsNotDuplicated) {
  open();
  json::value doc = one_module_pipeline("", "m");
  doc.as_object()["name"] = "IoT Sensors (v2)";
  EXPECT_EQ(pipeline_id_from_name(doc.as_object()), "iot-sensors-v2");
  PipelineSpec spec = create_ok(doc);
  EXPECT_EQ(spec.pipeline_id, "iot-sensors-v2");
  EXPECT_EQ(spec.name, "IoT Sensors (v2)");

  Status again = error_of(orchestrator_->create_pipeline(doc));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.message().find("the id its name gives"), std::string::npos) << again.message();
  EXPECT_EQ(orchestrator_->pipelines().size(), 1u);

  const fs::path file = options_.pipelines_path / "iot-sensors-v2.json";
  const auto written = fs::last_write_time(file);
  const auto configuration = orchestrator_->configuration();
  bool changed = true;
  auto same = orchestrator_->replace_pipeline("iot-sensors-v2", doc, &changed);
  ASSERT_TRUE(same.is_ok()) << same.status().message();
  EXPECT_FALSE(changed);
  EXPECT_EQ(fs::last_write_time(file), written);
  EXPECT_EQ(orchestrator_->configuration(), configuration) << "nothing republished";

  doc.as_object()["priority"] = 3;
  auto different = orchestrator_->replace_pipeline("iot-sensors-v2", doc, &changed);
  ASSERT_TRUE(different.is_ok()) << different.status().message();
  EXPECT_TRUE(changed);
  EXPECT_EQ(different->priority, 3);

  // The seed 001 form is named by pipeline_name; characters outside ids become one '-'.
  json::object seed{{"pipeline_name", "  Raw -> Processed!! "}};
  EXPECT_EQ(pipeline_id_from_name(seed), "raw-processed");
  EXPECT_EQ(pipeline_id_from_name(json::object{{"name", "***"}}), "");
  EXPECT_EQ(pipeline_id_from_name(json::object{{"name", "x"}, {"pipeline_id", "given"}}), "");
  EXPECT_EQ(pipeline_id_from_name(json::object{{"name", ".hidden"}}), "hidden");
  EXPECT_EQ(pipeline_id_from_name(json::object{{"name", std::string(300, 'a')}}).size(),
            kMaxIdLength);
}

// Two pipelines may not share a name: the second is refused naming the first, whatever ids
// they have, and nothing changes.
TEST_F(OrchestratorTest, TwoPipelinesWithTheSameNameAreRefused) {
  open();
  json::value first = one_module_pipeline("p1", "m");
  first.as_object()["name"] = "orders";
  create_ok(first);
  json::value second = one_module_pipeline("p2", "m");
  second.as_object()["name"] = "orders";
  Status e = error_of(orchestrator_->create_pipeline(second));
  EXPECT_EQ(e.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(e.field(), "name");
  EXPECT_NE(e.message().find("\"p1\""), std::string::npos) << e.message();
  EXPECT_FALSE(fs::exists(options_.pipelines_path / "p2.json"));
  // Renaming another pipeline to it is refused too.
  create_ok(one_module_pipeline("p3", "m"));
  Status rename = error_of(orchestrator_->patch_pipeline("p3", json::object{{"name", "orders"}}));
  EXPECT_EQ(rename.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(orchestrator_->find_pipeline("p3")->spec.name, "p3");
}

TEST_F(OrchestratorTest, AnInvalidPipelineIsRefusedWithItsFieldAndChangesNothing) {
  open();
  create_ok(one_module_pipeline("p1", "m"));
  const auto pipelines = orchestrator_->pipelines();
  const auto configuration = orchestrator_->configuration();
  const auto files = files_in(options_.pipelines_path);
  const std::string p1_file = file_text(options_.pipelines_path / "p1.json");

  const json::value bad_regex =
      one_module_pipeline("p2", "m", R"([{"filter_type": "Regex", "pattern": "a(b"}])");
  Status e = error_of(orchestrator_->create_pipeline(bad_regex));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "stages[0].modules[0].topic_filters[0].pattern");
  EXPECT_EQ(
      e.message().rfind("stages[0].modules[0].topic_filters[0].pattern: invalid regex", 0),
      0u)
      << e.message();

  // The same document as the new version of p1, whole or as a patch.
  json::value bad_p1 = bad_regex;
  bad_p1.as_object()["pipeline_id"] = "p1";
  e = error_of(orchestrator_->replace_pipeline("p1", bad_p1));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "stages[0].modules[0].topic_filters[0].pattern");
  e = error_of(orchestrator_->patch_pipeline("p1", json::parse(R"({"global_timeout_ms": -1})")));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "global_timeout_ms");
  e = error_of(orchestrator_->patch_pipeline("p1", json::parse(R"({"stages": [{"priority": 0,
      "modules": [{"module_id": "m", "topic_filters": [{"filter_type": "Bogus", "pattern": "x"}]}]}]})")));
  EXPECT_EQ(e.field(), "stages[0].modules[0].topic_filters[0].filter_type");
  e = error_of(orchestrator_->patch_pipeline("p1", json::parse("[1]")));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  e = error_of(orchestrator_->create_pipeline(json::parse("42")));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(orchestrator_->configuration(), configuration) << "no new snapshot was published";
  EXPECT_EQ(files_in(options_.pipelines_path), files);
  EXPECT_EQ(file_text(options_.pipelines_path / "p1.json"), p1_file);
  ASSERT_EQ(orchestrator_->pipelines().size(), pipelines.size());
  EXPECT_EQ(orchestrator_->pipelines()[0].spec, pipelines[0].spec);
}

TEST_F(OrchestratorTest, ADuplicateIdIsRefused) {
  open();
  create_ok(one_module_pipeline("p1", "m"));
  const auto configuration = orchestrator_->configuration();
  Status e = error_of(orchestrator_->create_pipeline(one_module_pipeline("p1", "x")));
  EXPECT_EQ(e.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(e.message().find("\"p1\""), std::string::npos);
  EXPECT_EQ(orchestrator_->find_pipeline("p1")->spec.stages[0].modules[0].module_id, "m");
  EXPECT_EQ(orchestrator_->configuration(), configuration);
}

TEST_F(OrchestratorTest, ReplaceTakesThePathsIdAndRefusesAnother) {
  open();
  create_ok(one_module_pipeline("p1", "m", R"([{"filter_type": "Exact", "pattern": "a"}])"));

  Status e =
      error_of(orchestrator_->replace_pipeline("p1", one_module_pipeline("p2", "m")));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "pipeline_id");
  EXPECT_FALSE(orchestrator_->find_pipeline("p2"));

  e = error_of(orchestrator_->replace_pipeline("nope", one_module_pipeline("nope", "m")));
  EXPECT_EQ(e.code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(options_.pipelines_path / "nope.json"));

  // Without pipeline_id in the body, the path names it.
  auto replaced = orchestrator_->replace_pipeline(
      "p1", one_module_pipeline("", "n", R"([{"filter_type": "Exact", "pattern": "b"}])"));
  ASSERT_TRUE(replaced.is_ok())
      << error_of(replaced).message();
  EXPECT_EQ(replaced.value().pipeline_id, "p1");
  EXPECT_EQ(orchestrator_->find_pipeline("p1")->spec.stages[0].modules[0].module_id, "n");
  EXPECT_TRUE(planned(*orchestrator_->configuration(), "a").empty());
  EXPECT_EQ(planned(*orchestrator_->configuration(), "b"), std::vector<std::string>{"p1"});
  EXPECT_NE(file_text(options_.pipelines_path / "p1.json").find("\"n\""), std::string::npos);
}

TEST_F(OrchestratorTest, PatchAndSetEnabledDisableAndEnableAndPersist) {
  open();
  create_ok(one_module_pipeline("p1", "m"));
  create_ok(one_module_pipeline("p2", "m"));
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"), (std::vector<std::string>{"p1", "p2"}));

  auto patched = orchestrator_->patch_pipeline("p1", json::parse(R"({"enabled": false})"));
  ASSERT_TRUE(patched.is_ok()) << error_of(patched).message();
  EXPECT_FALSE(patched.value().enabled);
  EXPECT_EQ(patched.value().stages[0].modules[0].module_id, "m")
      << "a merge patch keeps what it does not name";
  EXPECT_FALSE(orchestrator_->find_pipeline("p1")->spec.enabled);
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"), std::vector<std::string>{"p2"});
  EXPECT_FALSE(orchestrator_->configuration()->find("p1")->spec.enabled)
      << "a disabled pipeline stays in the snapshot, out of the plans";
  PipelineSpec persisted;
  ASSERT_TRUE(
      parse_pipeline(json::parse(file_text(options_.pipelines_path / "p1.json")), "", &persisted)
          .is_ok());
  EXPECT_FALSE(persisted.enabled);

  ASSERT_TRUE((orchestrator_->set_enabled("p2", false)).is_ok());
  EXPECT_TRUE(orchestrator_->configuration()->plan_for("t")->empty());
  ASSERT_TRUE((orchestrator_->set_enabled("p1", true)).is_ok());
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"), std::vector<std::string>{"p1"});

  open();
  EXPECT_TRUE(orchestrator_->find_pipeline("p1")->spec.enabled);
  EXPECT_FALSE(orchestrator_->find_pipeline("p2")->spec.enabled);
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"), std::vector<std::string>{"p1"});

  EXPECT_EQ(error_of(orchestrator_->set_enabled("nope", true)).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(error_of(orchestrator_->patch_pipeline("nope", json::object{})).code(),
            StatusCode::kNotFound);
}

TEST_F(OrchestratorTest, DeleteRemovesTheFileAndThePlan) {
  open();
  create_ok(one_module_pipeline("p1", "m"));
  ASSERT_TRUE(orchestrator_->delete_pipeline("p1").is_ok());
  EXPECT_FALSE(fs::exists(options_.pipelines_path / "p1.json"));
  EXPECT_FALSE(orchestrator_->find_pipeline("p1"));
  EXPECT_TRUE(orchestrator_->configuration()->plan_for("t")->empty());
  EXPECT_FALSE(orchestrator_->configuration()->find("p1"));
  EXPECT_EQ(orchestrator_->delete_pipeline("p1").code(), StatusCode::kNotFound);
  open();
  EXPECT_TRUE(orchestrator_->pipelines().empty());
}

TEST_F(OrchestratorTest, APatchCannotRenameAPipeline) {
  open();
  create_ok(one_module_pipeline("p1", "m"));
  Status e =
      error_of(orchestrator_->patch_pipeline("p1", json::parse(R"({"pipeline_id": "p9"})")));
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "pipeline_id");
  EXPECT_EQ(ids_of(orchestrator_->pipelines()), std::vector<std::string>{"p1"});
  EXPECT_EQ(files_in(options_.pipelines_path), std::vector<std::string>{"p1.json"});
}

TEST_F(OrchestratorTest, CreationStopsAtMaxPipelines) {
  options_.max_pipelines = 2;
  open(json::array{one_module_pipeline("from-file", "m")});
  create_ok(one_module_pipeline("p1", "m"));
  Status e = error_of(orchestrator_->create_pipeline(one_module_pipeline("p2", "m")));
  EXPECT_EQ(e.code(), StatusCode::kConflict);
  EXPECT_NE(e.message().find("at most 2 pipelines"), std::string::npos);
  EXPECT_FALSE(fs::exists(options_.pipelines_path / "p2.json"));
  // Changing one at the limit is no creation.
  EXPECT_TRUE((
      orchestrator_->replace_pipeline("p1", one_module_pipeline("p1", "n"))).is_ok());
}

TEST_F(OrchestratorTest, PlansOrderPipelinesByPriorityThenIdAndLeaveStreamsOut) {
  open();
  auto with_priority = [](std::string_view id, int priority) {
    json::value document = one_module_pipeline(id, "m");
    document.as_object()["priority"] = priority;
    return document;
  };
  create_ok(with_priority("p-late", 5));
  create_ok(with_priority("p-early", -1));
  create_ok(with_priority("p-b", 0));
  create_ok(with_priority("p-a", 0));
  create_ok(json::parse(R"({"pipeline_id": "stream", "pipeline_name": "s", "source_topic": "t",
      "destination_topic": "t-out", "module_name": "m"})"));
  ASSERT_EQ(orchestrator_->find_pipeline("stream")->spec.mode, PipelineMode::kStream);
  auto configuration = orchestrator_->configuration();
  EXPECT_EQ(planned(*configuration, "t"),
            (std::vector<std::string>{"p-early", "p-a", "p-b", "p-late"}));
  EXPECT_EQ(configuration->plan_for("t"), configuration->plan_for("t")) << "cached per topic";
  ASSERT_TRUE(orchestrator_->delete_pipeline("p-a").is_ok());
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"),
            (std::vector<std::string>{"p-early", "p-b", "p-late"}));
  EXPECT_EQ(planned(*configuration, "t").size(), 4u) << "the old snapshot keeps its plan";
}

// --- Pipelines from the configuration file -------------------------------------------------

TEST_F(OrchestratorTest, FilePipelinesLoadAndRefuseChangesFromTheApi) {
  open(json::array{one_module_pipeline("from-file", "m")});
  ASSERT_EQ(ids_of(orchestrator_->pipelines()), std::vector<std::string>{"from-file"});
  EXPECT_EQ(orchestrator_->pipelines()[0].origin, PipelineOrigin::kFile);
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"), std::vector<std::string>{"from-file"});
  EXPECT_TRUE(files_in(options_.pipelines_path).empty()) << "file pipelines are not persisted";
  const auto configuration = orchestrator_->configuration();

  auto expect_conflict = [](const Status& s, const char* what) {
    EXPECT_EQ(s.code(), StatusCode::kConflict) << what << ": " << s.message();
    EXPECT_NE(s.message().find("defined in the configuration file"), std::string::npos)
        << what << ": " << s.message();
  };
  expect_conflict(
      error_of(orchestrator_->replace_pipeline("from-file", one_module_pipeline("from-file", "x"))),
      "replace");
  expect_conflict(
      error_of(orchestrator_->replace_pipeline("from-file", one_module_pipeline("other", "x"))),
      "replace with another id");
  expect_conflict(
      error_of(orchestrator_->patch_pipeline("from-file", json::parse(R"({"enabled": false})"))),
      "patch");
  expect_conflict(
      error_of(orchestrator_->patch_pipeline("from-file", json::parse(R"({"priority": "x"})"))),
      "invalid patch");
  expect_conflict(error_of(orchestrator_->set_enabled("from-file", false)), "stop");
  expect_conflict(orchestrator_->delete_pipeline("from-file"), "delete");
  EXPECT_EQ(
      error_of(orchestrator_->create_pipeline(one_module_pipeline("from-file", "x"))).code(),
      StatusCode::kAlreadyExists);

  EXPECT_EQ(orchestrator_->configuration(), configuration);
  EXPECT_TRUE(orchestrator_->find_pipeline("from-file")->spec.enabled);
  EXPECT_TRUE(files_in(options_.pipelines_path).empty());

  // API pipelines live beside them.
  create_ok(one_module_pipeline("from-api", "m"));
  EXPECT_EQ(planned(*orchestrator_->configuration(), "t"),
            (std::vector<std::string>{"from-api", "from-file"}));
}

TEST_F(OrchestratorTest, ABadFilePipelineFailsTheStartNamingItsPlace) {
  json::array file{
      one_module_pipeline("good", "m"),
      one_module_pipeline("bad", "m", R"([{"filter_type": "Regex", "pattern": "(("}])")};
  auto r = try_open(file);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      r.status().message().rfind(
          "etl.pipelines[1]: stages[0].modules[0].topic_filters[0].pattern: invalid regex", 0),
      0u)
      << r.status().message();

  auto twice =
      try_open(json::array{one_module_pipeline("same", "m"), one_module_pipeline("same", "n")});
  ASSERT_FALSE(twice.is_ok());
  EXPECT_EQ(twice.status().message().rfind("etl.pipelines[1]: pipeline_id \"same\"", 0), 0u)
      << twice.status().message();
}

// A stream pipeline `id` from `source` to `destination`.
json::value stream_pipeline(std::string_view id, std::string_view source,
                            std::string_view destination) {
  json::value document = json::parse(R"({"mode": "stream",
      "stages": [{"priority": 0, "modules": [{"module_id": "m"}]}]})");
  auto& o = document.as_object();
  o["pipeline_id"] = id;
  o["name"] = id;
  o["source_topic"] = source;
  o["destination_topic"] = destination;
  return document;
}

// M9: s-a (sa -> sb) and s-b (sb -> sa) were both accepted; one message then looped for ever.
TEST_F(OrchestratorTest, StreamPipelinesThatWouldFormACycleAreRefusedOverTheApi) {
  open();
  create_ok(stream_pipeline("s-a", "sa", "sb"));
  const auto before = orchestrator_->configuration();
  auto expect_cycle = [](const Status& e, const std::string& cycle) {
    EXPECT_EQ(e.code(), StatusCode::kConflict) << e.message();
    EXPECT_NE(e.message().find(cycle), std::string::npos) << e.message();
    EXPECT_EQ(e.field(), "destination_topic");
  };
  expect_cycle(error_of(orchestrator_->create_pipeline(stream_pipeline("s-b", "sb", "sa"))),
               "would form a cycle, and one message would go round it for ever: s-a: sa \u2192 "
               "sb \u2192 sa");
  EXPECT_FALSE(orchestrator_->find_pipeline("s-b"));
  EXPECT_EQ(files_in(options_.pipelines_path), std::vector<std::string>{"s-a.json"});
  EXPECT_EQ(orchestrator_->configuration(), before);

  // A disabled one may close the loop; enabling it may not, by patch or by replace.
  json::value disabled = stream_pipeline("s-b", "sb", "sa");
  disabled.as_object()["enabled"] = false;
  create_ok(disabled);
  expect_cycle(error_of(orchestrator_->set_enabled("s-b", true)), "s-a: sa \u2192 sb \u2192 sa");
  expect_cycle(error_of(orchestrator_->replace_pipeline("s-b", stream_pipeline("s-b", "sb", "sa"))),
               "s-a: sa \u2192 sb \u2192 sa");
  EXPECT_FALSE(orchestrator_->find_pipeline("s-b")->spec.enabled);
  // Changing the other end by patch is checked too.
  create_ok(stream_pipeline("s-c", "sc", "sd"));
  expect_cycle(error_of(orchestrator_->patch_pipeline(
                   "s-c", json::parse(R"({"source_topic": "sb", "destination_topic": "sa"})"))),
               "s-a: sa \u2192 sb \u2192 sa");
}

TEST_F(OrchestratorTest, StreamPipelinesThatWouldFormACycleAreRefusedInTheFile) {
  auto at_start =
      try_open(json::array{stream_pipeline("s-a", "sa", "sb"), stream_pipeline("s-b", "sb", "sa")});
  ASSERT_FALSE(at_start.is_ok());
  EXPECT_EQ(at_start.status().code(), StatusCode::kConflict);
  EXPECT_NE(at_start.status().message().find("etl.pipelines: stream pipelines would form a cycle"),
            std::string::npos)
      << at_start.status().message();

  open(json::array{stream_pipeline("s-a", "sa", "sb")});
  create_ok(stream_pipeline("api", "x", "sa"));
  const auto before = orchestrator_->configuration();
  // A cycle through a pipeline of the API.
  auto reload = orchestrator_->replace_file_pipelines(
      json::array{stream_pipeline("s-a", "sa", "sb"), stream_pipeline("s-b", "sb", "x")});
  ASSERT_FALSE(reload.is_ok());
  EXPECT_EQ(reload.status().code(), StatusCode::kConflict);
  EXPECT_NE(reload.status().message().find("api: x \u2192 sa \u2192 sb \u2192 x"),
            std::string::npos)
      << reload.status().message();
  reload = orchestrator_->replace_file_pipelines(
      json::array{stream_pipeline("s-a", "sa", "sb"), stream_pipeline("s-b", "sb", "sa")});
  ASSERT_FALSE(reload.is_ok());
  EXPECT_NE(reload.status().message().find("s-a: sa \u2192 sb \u2192 sa"), std::string::npos)
      << reload.status().message();
  EXPECT_EQ(orchestrator_->configuration(), before);
  EXPECT_FALSE(orchestrator_->find_pipeline("s-b"));
}

// M9 after a restart: api-c (cb -> cc) was persisted; then cf-a (ca -> cb) and cf-c (cc -> ca)
// were added to the file with the broker stopped. The start only warned, and all three ran.
TEST_F(OrchestratorTest, AnApiPipelineClosingACycleWithFilePipelinesStaysStoppedAfterAStart) {
  open();
  create_ok(stream_pipeline("api-c", "cb", "cc"));
  create_ok(stream_pipeline("api-other", "x", "y"));
  const json::array file{stream_pipeline("cf-a", "ca", "cb"), stream_pipeline("cf-c", "cc", "ca")};
  open(file);

  auto stopped = orchestrator_->find_pipeline("api-c");
  ASSERT_TRUE(stopped);
  EXPECT_FALSE(stopped->spec.enabled);
  EXPECT_TRUE(orchestrator_->find_pipeline("api-other")->spec.enabled);
  EXPECT_TRUE(orchestrator_->find_pipeline("cf-a")->spec.enabled);
  // Nothing that runs forms a cycle.
  EXPECT_EQ(find_stream_cycle(orchestrator_->configuration()->pipelines()), std::nullopt);
  EXPECT_FALSE(orchestrator_->configuration()->find("api-c")->spec.enabled);
  // Why, in the warnings of the start and in the pipeline's stop reason.
  const std::string cycle = "api-c: cb \u2192 cc \u2192 ca \u2192 cb";
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("pipeline api-c stopped at start"), std::string::npos)
      << warnings_[0];
  EXPECT_NE(warnings_[0].find(cycle), std::string::npos) << warnings_[0];
  auto reason = orchestrator_->stop_reason("api-c");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find(cycle), std::string::npos) << *reason;
  EXPECT_FALSE(orchestrator_->stop_reason("api-other"));
  // Kept, not deleted; stopped on disk too, and starting it is refused while the cycle remains.
  EXPECT_EQ(json::parse(file_text(options_.pipelines_path / "api-c.json")).at("enabled"), false);
  EXPECT_EQ(error_of(orchestrator_->set_enabled("api-c", true)).code(),
            StatusCode::kConflict);
  EXPECT_TRUE(orchestrator_->stop_reason("api-c"));

  // Once the file no longer closes the cycle, it may be started; the reason goes.
  ASSERT_TRUE(orchestrator_->replace_file_pipelines(json::array{file[0]}).is_ok());
  ASSERT_TRUE((orchestrator_->set_enabled("api-c", true)).is_ok());
  EXPECT_FALSE(orchestrator_->stop_reason("api-c"));
}

// A cycle of API pipelines alone (persisted by a version that did not refuse cycles) ran too.
TEST_F(OrchestratorTest, PersistedApiPipelinesFormingACycleAreStoppedAtStart) {
  open();
  create_ok(stream_pipeline("s-a", "sa", "sb"));
  orchestrator_.reset();
  // As an older version wrote it.
  std::ofstream(options_.pipelines_path / "s-b.json")
      << json::serialize(stream_pipeline("s-b", "sb", "sa"));
  open();
  EXPECT_EQ(find_stream_cycle(orchestrator_->configuration()->pipelines()), std::nullopt);
  EXPECT_FALSE(orchestrator_->find_pipeline("s-a")->spec.enabled);
  EXPECT_FALSE(orchestrator_->find_pipeline("s-b")->spec.enabled);
  EXPECT_TRUE(orchestrator_->stop_reason("s-b"));
  EXPECT_EQ(warnings_.size(), 2u);
}

TEST_F(OrchestratorTest, APersistedPipelineWithAFilePipelinesIdIsSkippedWithAWarning) {
  open();
  create_ok(one_module_pipeline("shared", "api-module"));
  create_ok(one_module_pipeline("api-only", "api-module"));
  open(json::array{one_module_pipeline("shared", "file-module")});
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("shared.json"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("configuration file"), std::string::npos) << warnings_[0];
  EXPECT_EQ(ids_of(orchestrator_->pipelines()), (std::vector<std::string>{"api-only", "shared"}));
  auto shared = orchestrator_->find_pipeline("shared");
  EXPECT_EQ(shared->origin, PipelineOrigin::kFile);
  EXPECT_EQ(shared->spec.stages[0].modules[0].module_id, "file-module");
}

TEST_F(OrchestratorTest, DamagedPersistedPipelinesAreSkippedWithAWarning) {
  open();
  create_ok(one_module_pipeline("good", "m"));
  orchestrator_.reset();
  std::ofstream(options_.pipelines_path / "torn.json") << R"({"pipeline_id": "torn", "sta)";
  std::ofstream(options_.pipelines_path / "invalid.json")
      << json::serialize(one_module_pipeline("invalid", "m", R"([{"filter_type": "Nope"}])"));
  // Deleting "elsewhere" would remove elsewhere.json and leave this one to come back.
  std::ofstream(options_.pipelines_path / "renamed.json")
      << json::serialize(one_module_pipeline("elsewhere", "m"));
  open();
  EXPECT_EQ(ids_of(orchestrator_->pipelines()), std::vector<std::string>{"good"});
  ASSERT_EQ(warnings_.size(), 3u);
  std::sort(warnings_.begin(), warnings_.end());
  EXPECT_NE(warnings_[0].find("invalid.json"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("topic_filters[0]"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[1].find("renamed.json"), std::string::npos) << warnings_[1];
  EXPECT_NE(warnings_[1].find("\"elsewhere\""), std::string::npos) << warnings_[1];
  EXPECT_NE(warnings_[2].find("torn.json"), std::string::npos) << warnings_[2];
}

// --- Restart -------------------------------------------------------------------------------

TEST_F(OrchestratorTest, ApiPipelinesAndModulesSurviveARestart) {
  open(json::array{one_module_pipeline("from-file", "m")});
  upload_ok("m", "1.0.0", "passthrough");
  upload_ok("m", "1.1.0", "header_adder");
  json::value rich = json::parse(R"({
      "pipeline_id": "rich", "name": "Rich", "description": "every kind of field", "priority": 7,
      "error_handling": "SendToDeadLetter", "dead_letter_config": {"topic_prefix": "dlq.x"},
      "stages": [
        {"priority": 1, "parallel_execution": true, "modules": [
          {"module_id": "m", "instance_config": {"custom_config": {"team": "data"}}},
          {"module_id": "m-v1.0.0", "conditional_rules": [{"condition_type": "HeaderValue",
            "field_path": "kind", "operator": "Equals", "value": "x"}]}]},
        {"priority": 0, "modules": [{"module_id": "m", "topic_filters": [
          {"filter_type": "Wildcard", "pattern": "orders.*", "case_sensitive": false}]}]}]})");
  create_ok(rich);
  create_ok(one_module_pipeline("", "m"));
  ASSERT_TRUE((orchestrator_->set_enabled("rich", false)).is_ok());
  const auto pipelines = orchestrator_->pipelines();
  const auto modules = orchestrator_->modules().list();
  ASSERT_EQ(pipelines.size(), 3u);

  open(json::array{one_module_pipeline("from-file", "m")});
  EXPECT_TRUE(warnings_.empty()) << warnings_.front();
  const auto reopened = orchestrator_->pipelines();
  ASSERT_EQ(reopened.size(), pipelines.size());
  for (size_t i = 0; i < pipelines.size(); ++i) {
    EXPECT_EQ(reopened[i].spec, pipelines[i].spec) << pipelines[i].spec.pipeline_id;
    EXPECT_EQ(reopened[i].origin, pipelines[i].origin) << pipelines[i].spec.pipeline_id;
  }
  const auto reloaded = orchestrator_->modules().list();
  ASSERT_EQ(reloaded.size(), modules.size());
  for (size_t i = 0; i < modules.size(); ++i) {
    EXPECT_EQ(module_to_json(*reloaded[i]), module_to_json(*modules[i]));
  }
  EXPECT_EQ(orchestrator_->modules().resolve("m")->id, "m-v1.1.0");
}

// --- Module deletion and use ---------------------------------------------------------------

TEST_F(OrchestratorTest, AModulePinnedByAnEnabledPipelineCannotBeDeleted) {
  open();
  upload_ok("m", "1.0.0", "passthrough");
  create_ok(one_module_pipeline("pins", "m-v1.0.0"));
  Status s = orchestrator_->delete_module("m-v1.0.0");
  EXPECT_EQ(s.code(), StatusCode::kConflict);
  EXPECT_NE(s.message().find("pins"), std::string::npos) << s.message();
  EXPECT_TRUE(orchestrator_->modules().find("m-v1.0.0"));
  EXPECT_TRUE(fs::exists(options_.modules_path / "m-v1.0.0.wasm"));

  ASSERT_TRUE((orchestrator_->set_enabled("pins", false)).is_ok());
  EXPECT_TRUE(orchestrator_->delete_module("m-v1.0.0").is_ok());
  EXPECT_FALSE(orchestrator_->modules().find("m-v1.0.0"));
  EXPECT_TRUE(files_in(options_.modules_path).empty());
  EXPECT_EQ(orchestrator_->delete_module("m-v1.0.0").code(), StatusCode::kNotFound);
}

// A bare name is no one version: deleting it is refused with the versions there are.
TEST_F(OrchestratorTest, DeletingABareNameListsItsVersions) {
  open();
  upload_ok("m", "1.0.0", "passthrough");
  upload_ok("m", "1.1.0", "passthrough");
  Status s = orchestrator_->delete_module("m");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "module m: delete one version by its full id (name-vX.Y.Z); its versions: m-v1.0.0, "
            "m-v1.1.0");
  EXPECT_EQ(orchestrator_->modules().list().size(), 2u);
  EXPECT_EQ(orchestrator_->delete_module("nothing").code(), StatusCode::kNotFound);
}

TEST_F(OrchestratorTest, AModuleFollowedByBareNameCanBeDeleted) {
  open();
  upload_ok("m", "1.0.0", "passthrough");
  create_ok(one_module_pipeline("follows", "m"));
  EXPECT_TRUE(orchestrator_->delete_module("m-v1.0.0").is_ok());
}

TEST_F(OrchestratorTest, UsedByListsThePipelinesThatPinOrFollow) {
  open();
  upload_ok("m", "1.0.0", "passthrough");
  create_ok(one_module_pipeline("pins", "m-v1.0.0"));
  create_ok(one_module_pipeline("follows", "m"));
  create_ok(one_module_pipeline("other", "n"));
  auto v1 = orchestrator_->modules().find("m-v1.0.0");
  EXPECT_EQ(orchestrator_->used_by(*v1), (std::vector<std::string>{"follows", "pins"}));

  upload_ok("m", "1.1.0", "passthrough");
  auto v11 = orchestrator_->modules().find("m-v1.1.0");
  EXPECT_EQ(orchestrator_->used_by(*v1), std::vector<std::string>{"pins"});
  EXPECT_EQ(orchestrator_->used_by(*v11), std::vector<std::string>{"follows"});
}

// --- Version following ---------------------------------------------------------------------

// "probe" v1.0.0 passes messages through; v2.0.0 is header-adder, which adds
// processed-by: header-adder. The output tells which one ran.
TEST_F(OrchestratorTest, ABareNameRunsTheNewestVersionAndRollsBackOnDelete) {
  open();
  upload_ok("probe", "1.0.0", "passthrough");
  create_ok(one_module_pipeline("follows", "probe"));
  EXPECT_EQ(header_after("t", "processed-by"), "(absent)");

  upload_ok("probe", "2.0.0", "header_adder");
  EXPECT_EQ(header_after("t", "processed-by"), "header-adder") << "new calls use the new version";

  upload_ok("probe", "1.5.0", "passthrough");
  EXPECT_EQ(header_after("t", "processed-by"), "header-adder") << "1.5.0 is older than 2.0.0";

  ASSERT_TRUE(orchestrator_->delete_module("probe-v2.0.0").is_ok());
  EXPECT_EQ(header_after("t", "processed-by"), "(absent)") << "rolled back to 1.5.0";
}

TEST_F(OrchestratorTest, APinnedIdKeepsItsVersionAfterANewerUpload) {
  open();
  upload_ok("probe", "1.0.0", "header_adder");
  json::value pinned = one_module_pipeline("pinned", "probe-v1.0.0");
  pinned.at_pointer("/stages/0/modules/0").as_object()["instance_config"] =
      json::parse(R"({"custom_config": {"version": "one"}})");
  create_ok(pinned);
  EXPECT_EQ(header_after("t", "version"), "one");

  upload_ok("probe", "2.0.0", "passthrough");
  EXPECT_EQ(header_after("t", "version"), "one");
}

TEST_F(OrchestratorTest, ADeletedPinnedModuleFailsItsPipelineNotTheMessage) {
  open();
  upload_ok("probe", "1.0.0", "header_adder");
  create_ok(one_module_pipeline("pinned", "probe-v1.0.0"));
  ASSERT_TRUE((orchestrator_->set_enabled("pinned", false)).is_ok());
  ASSERT_TRUE(orchestrator_->delete_module("probe-v1.0.0").is_ok());
  ASSERT_TRUE((orchestrator_->set_enabled("pinned", true)).is_ok());
  BatchResult r = process("t", {message()});
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_EQ(r.outcomes[0].kind, InputOutcome::Kind::kPass) << "SkipModule: the message goes on";
  ASSERT_EQ(r.outcomes[0].outputs.size(), 1u);
  const Message& out = r.outcomes[0].outputs[0].message;
  EXPECT_EQ(out.value, "hello");
  EXPECT_FALSE(out.header("processed-by")) << "the deleted module did not run";
  // Counted as a module that is not deployed, not written as an error record per message.
  EXPECT_TRUE(r.error_records.empty());
  auto figures = orchestrator_->runtime().figures.find("pinned");
  ASSERT_NE(figures, nullptr);
  ModuleFigures& module = figures->module(0, 0, "probe-v1.0.0");
  EXPECT_EQ(module.not_deployed.load(), 1u);
  EXPECT_EQ(module.failed.load(), 1u);
}

// --- Dry runs ------------------------------------------------------------------------------

TEST_F(OrchestratorTest, DryRunTracesEveryModuleConsideredAndStoresNothing) {
  open();
  upload_ok("probe", "1.0.0", "header_adder");
  json::value document = json::parse(R"({"pipeline_id": "traced", "enabled": false, "stages": [
      {"priority": 0, "modules": [
        {"module_id": "probe", "topic_filters": [{"filter_type": "Exact", "pattern": "elsewhere"}]},
        {"module_id": "probe", "conditional_rules": [{"condition_type": "HeaderValue",
          "field_path": "kind", "operator": "Equals", "value": "x"}]},
        {"module_id": "probe-v1.0.0", "topic_filters": [
          {"filter_type": "Exact", "pattern": "elsewhere"},
          {"filter_type": "Prefix", "pattern": "ord"}]}]},
      {"priority": 1, "modules": [
        {"module_id": "probe", "topic_filters": [{"filter_type": "Suffix", "pattern": ".eu"}]}]}]})");
  create_ok(document);
  const auto configuration = orchestrator_->configuration();
  const auto pipeline_files = files_in(options_.pipelines_path);
  const auto module_files = files_in(options_.modules_path);

  Message in = message();
  auto r = dry_run("traced", "orders", {in});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto& [result, trace] = *r;
  ASSERT_EQ(result.outcomes.size(), 1u);
  EXPECT_EQ(result.outcomes[0].kind, InputOutcome::Kind::kPass);
  ASSERT_EQ(result.outcomes[0].outputs.size(), 1u);
  EXPECT_EQ(*result.outcomes[0].outputs[0].message.header("processed-by"), "header-adder");

  ASSERT_EQ(trace.per_input.size(), 1u);
  const auto& steps = trace.per_input[0];
  ASSERT_EQ(steps.size(), 4u);
  std::string order;
  for (const auto& s : steps) order += std::to_string(s.stage_priority);
  EXPECT_EQ(order, "0001") << "steps in stage order";
  auto step_with = [&](std::string_view decided_by) -> const TraceStep* {
    for (const auto& s : steps) {
      if (s.decided_by.find(decided_by) != std::string::npos) return &s;
    }
    ADD_FAILURE() << "no step decided by " << decided_by;
    return nullptr;
  };
  const TraceStep* by_topic = step_with("topic_filters: none matches topic \"orders\"");
  const TraceStep* by_rule = step_with("conditional_rules[0] does not hold");
  const TraceStep* ran = step_with("topic_filters[1] matches");
  ASSERT_TRUE(by_topic && by_rule && ran);
  EXPECT_FALSE(by_topic->matched);
  EXPECT_FALSE(by_topic->ran);
  EXPECT_EQ(by_topic->pipeline_id, "traced");
  EXPECT_FALSE(by_rule->matched);
  EXPECT_FALSE(by_rule->ran);
  EXPECT_TRUE(ran->matched);
  EXPECT_TRUE(ran->ran);
  EXPECT_EQ(ran->module_id, "probe-v1.0.0");
  EXPECT_EQ(ran->resolved_id, "probe-v1.0.0");
  EXPECT_TRUE(ran->error.empty()) << ran->error;
  ASSERT_EQ(ran->output.size(), 1u);
  EXPECT_EQ(*ran->output[0].header("processed-by"), "header-adder");
  EXPECT_EQ(*ran->output[0].header("source"), "test");

  EXPECT_EQ(orchestrator_->configuration(), configuration);
  EXPECT_EQ(files_in(options_.pipelines_path), pipeline_files);
  EXPECT_EQ(files_in(options_.modules_path), module_files);
  EXPECT_FALSE(orchestrator_->find_pipeline("traced")->spec.enabled);

  auto missing = dry_run("nope", "orders", {in});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// A dry run must not open the circuit breaker the live pipeline uses.
TEST_F(OrchestratorTest, DryRunFailuresDoNotOpenTheLiveCircuitBreaker) {
  open();
  upload_ok("trap", "1.0.0", "trap");
  json::value document = one_module_pipeline("fragile", "trap");
  document.as_object()["circuit_breaker"] = json::parse(R"({"failure_threshold": 1})");
  create_ok(document);
  auto r = dry_run("fragile", "t", {message(), message()});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_FALSE(r->second.per_input[0].empty());
  EXPECT_FALSE(r->second.per_input[0].back().error.empty());

  EXPECT_NE(r->second.per_input[1].back().error.find("circuit breaker open"), std::string::npos)
      << "within the dry run the breaker works as configured";

  BatchResult live = process("t", {message()});
  EXPECT_EQ(live.counts.breaker_rejections, 0u);
  EXPECT_EQ(live.counts.calls, 1u) << "the live module is still called";

  auto again = dry_run("fragile", "t", {message()});
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->first.counts.calls, 1u) << "each dry run starts with a closed breaker";
}


// --- Workers never sleep ---------------------------------------------------------------------

TEST_F(OrchestratorTest, ARunWaitingForItsRetryBackoffDoesNotHoldUpAnotherTopic) {
  open();  // one worker
  upload_ok("faulty", "1.0.0", "etl_faulty");
  upload_ok("pass", "1.0.0", "passthrough");
  json::value slow =
      one_module_pipeline("slow", "faulty", R"([{"filter_type": "Exact", "pattern": "slow"}])");
  slow.as_object()["error_handling"] = "RetryWithBackoff";
  slow.as_object()["retry_config"] =
      json::parse(R"({"max_retries": 2, "initial_delay_ms": 300, "jitter": false})");
  slow.at_pointer("/stages/0/modules/0").as_object()["instance_config"] =
      json::parse(R"({"custom_config": {"error_word": "fail"}})");
  create_ok(slow);
  create_ok(one_module_pipeline("fast", "pass", R"([{"filter_type": "Exact", "pattern": "fast"}])"));

  std::mutex mutex;
  std::vector<std::string> finished;
  uint64_t slow_retries = 0;
  std::promise<void> both;
  auto submit = [&](const std::string& topic, const std::string& value) {
    auto configuration = orchestrator_->configuration();
    auto plan = configuration->plan_for(topic);
    std::vector<InputMessage> inputs;
    inputs.push_back({message(value), std::nullopt});
    orchestrator_->process(configuration, plan, topic, std::move(inputs),
                           [&, topic](BatchResult r) {
                             std::lock_guard lock(mutex);
                             finished.push_back(topic);
                             if (topic == "slow") slow_retries = r.counts.retries;
                             if (finished.size() == 2) both.set_value();
                           });
  };
  submit("slow", "fail");  // fails, and waits 300 ms then 600 ms before its retries
  submit("fast", "hello");
  ASSERT_EQ(both.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  std::lock_guard lock(mutex);
  EXPECT_EQ(finished, (std::vector<std::string>{"fast", "slow"}))
      << "the only worker ran the second batch while the first waited for its backoff";
  EXPECT_EQ(slow_retries, 2u);
}


TEST_F(OrchestratorTest, ARunWaitingForTheCreationRateLimitDoesNotHoldUpAnotherTopic) {
  open();  // one worker
  upload_ok("trap", "1.0.0", "trap");
  upload_ok("pass", "1.0.0", "passthrough");
  // One new instance a second: each trap discards its instance, so the second message of the
  // batch waits about a second for the next.
  std::promise<Result<PoolChange>> resized;
  orchestrator_->pools().resize("trap-v1.0.0", {.creation_rate_limit = 1.0},
                                [&](Result<PoolChange> r) { resized.set_value(std::move(r)); });
  auto change = resized.get_future().get();
  ASSERT_TRUE(change.is_ok()) << change.status().message();
  create_ok(one_module_pipeline("slow", "trap", R"([{"filter_type": "Exact", "pattern": "slow"}])"));
  create_ok(one_module_pipeline("fast", "pass", R"([{"filter_type": "Exact", "pattern": "fast"}])"));

  std::mutex mutex;
  std::vector<std::string> finished;
  std::promise<void> both;
  auto submit = [&](const std::string& topic, size_t count) {
    auto configuration = orchestrator_->configuration();
    auto plan = configuration->plan_for(topic);
    std::vector<InputMessage> inputs;
    for (size_t i = 0; i < count; ++i) inputs.push_back({message(), std::nullopt});
    orchestrator_->process(configuration, plan, topic, std::move(inputs),
                           [&, topic](BatchResult) {
                             std::lock_guard lock(mutex);
                             finished.push_back(topic);
                             if (finished.size() == 2) both.set_value();
                           });
  };
  submit("slow", 2);
  submit("fast", 1);
  ASSERT_EQ(both.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  std::lock_guard lock(mutex);
  EXPECT_EQ(finished, (std::vector<std::string>{"fast", "slow"}))
      << "the only worker ran the second batch while the first waited for an instance";
  const PoolReport report = orchestrator_->pools().report();
  for (const auto& m : report.modules) {
    if (m.module_id == "trap-v1.0.0") {
      EXPECT_EQ(m.total.created_for_calls, 2u);
      EXPECT_EQ(m.total.creation_waits, 0u) << "no call waited inside the pool";
    }
  }
}

}  // namespace
}  // namespace wasmq::etl
