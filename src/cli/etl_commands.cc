#include "cli/etl_commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>

#include "common/json_text.h"
#include "cli/admin_client.h"
#include "common/base64.h"
#include "common/file.h"
#include "etl/module_signature.h"
#include "etl/pipeline.h"
#include "http/client.h"

namespace wasmq::cli {
namespace {

namespace json = boost::json;
using http::HttpClient;
using http::HttpReply;
using http::url_encode;

using Admin = AdminEndpoint;

struct Target {
  Admin admin;
  std::string id;
  bool json_output = false;
};

// One request to the admin API (admin_client.h).
int send(const Admin& admin, const std::string& method, const std::string& target,
         const std::string& body = "", json::value* out = nullptr,
         std::string_view content_type = "application/json",
         const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return admin_request(admin, method, target, body, out, content_type, headers);
}

std::string text_of(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  return json_text(v);
}

struct DeployOptions {
  Admin admin;
  std::string file, name, version;
  std::string signature_file;  // a raw 64-byte Ed25519 signature, or its base64
};

int deploy(const DeployOptions& o) {
  auto binary = read_file(o.file, 50ull << 20);
  if (!binary.is_ok()) {
    std::cerr << "error: " << binary.status().message() << "\n";
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> headers = {{"X-Module-Name", o.name},
                                                              {"X-Module-Version", o.version}};
  if (!o.signature_file.empty()) {
    auto signature = read_file(o.signature_file, 4096);
    if (!signature.is_ok()) {
      std::cerr << "error: " << signature.status().message() << "\n";
      return 1;
    }
    // `openssl pkeyutl -sign -rawin` writes the 64 raw bytes; a .b64 file holds their base64.
    std::string text = *signature;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    headers.emplace_back("X-Module-Signature",
                         signature->size() == 64 ? base64_encode(*signature) : text);
  }
  return send(o.admin, "POST", "/api/v1/etl/modules", *binary, nullptr, "application/octet-stream",
              headers);
}

struct SignOptions {
  std::string file, name, version, key_file;
};

// Prints the X-Module-Signature of `file` as name@version (docs/etl.md, "Signed modules").
int sign(const SignOptions& o) {
  auto binary = read_file(o.file, 50ull << 20);
  auto key = binary.is_ok() ? read_file(o.key_file, 64 << 10) : binary;
  if (!binary.is_ok() || !key.is_ok()) {
    std::cerr << "error: " << (binary.is_ok() ? key : binary).status().message() << "\n";
    return 1;
  }
  auto signature = etl::sign_module(
      *key, o.name, o.version,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(binary->data()), binary->size()));
  if (!signature.is_ok()) {
    std::cerr << "error: " << o.key_file << ": " << signature.status().message() << "\n";
    return 1;
  }
  std::cout << *signature << "\n";
  return 0;
}

// GET `path` and print its `key` array as a table, one row per element.
int list_table(const Target& t, const std::string& path, const char* key,
               std::vector<std::string> header,
               const std::function<std::vector<std::string>(const json::value&)>& row) {
  if (t.json_output) return send(t.admin, "GET", path);
  json::value v;
  if (int rc = send(t.admin, "GET", path, "", &v); rc != 0) return rc;
  std::vector<std::vector<std::string>> rows = {std::move(header)};
  for (const auto& element : v.at(key).as_array()) rows.push_back(row(element));
  print_table(rows);
  return 0;
}

int list_modules(const Target& t) {
  return list_table(t, "/api/v1/etl/modules", "modules",
                    {"MODULE", "SIZE", "SHA256", "UPLOADED", "USED BY"}, [](const json::value& m) {
                      std::string used;
                      for (const auto& p : m.at("used_by").as_array()) {
                        used += (used.empty() ? "" : ",") + text_of(p);
                      }
                      return std::vector<std::string>{
                          text_of(m.at("module_id")), text_of(m.at("size_bytes")),
                          text_of(m.at("sha256")).substr(0, 12), text_of(m.at("uploaded_at")),
                          used.empty() ? "-" : used};
                    });
}

// An inline pipeline's topics, from its modules' topic filters: "app-logs*,orders" ("*" when a
// module has none, so runs on every topic).
std::string inline_topics(const json::object& pipeline) {
  std::vector<std::string> topics;
  auto add = [&](std::string t) {
    if (std::find(topics.begin(), topics.end(), t) == topics.end()) topics.push_back(std::move(t));
  };
  for (const auto& stage : pipeline.at("stages").as_array()) {
    for (const auto& module : stage.at("modules").as_array()) {
      const json::value* filters = module.as_object().if_contains("topic_filters");
      if (filters == nullptr || filters->as_array().empty()) {
        add("*");
        continue;
      }
      for (const auto& f : filters->as_array()) {
        const std::string type = text_of(f.at("filter_type"));
        const std::string pattern = text_of(f.at("pattern"));
        if (type == "Exact" || type == "Wildcard") {
          add(pattern);
        } else if (type == "Prefix") {
          add(pattern + "*");
        } else if (type == "Suffix") {
          add("*" + pattern);
        } else if (type == "Contains") {
          add("*" + pattern + "*");
        } else {
          add("/" + pattern + "/");
        }
      }
    }
  }
  if (std::find(topics.begin(), topics.end(), "*") != topics.end()) return "*";
  std::string out;
  for (const auto& t : topics) out += (out.empty() ? "" : ",") + t;
  return out.empty() ? "-" : out;
}

int list_pipelines(const Target& t) {
  return list_table(
      t, "/api/v1/etl/pipelines", "pipelines",
      {"PIPELINE", "STATE", "MODE", "SOURCE", "DESTINATION", "ORIGIN", "PRIORITY", "STAGES",
       "NAME"},
      [](const json::value& p) {
        const json::object& o = p.as_object();
        const bool stream = o.contains("mode") && o.at("mode") == "stream";
        std::string source = "-", destination = "-";
        if (stream) {
          source = text_of(o.at("source_topic"));
          destination = text_of(o.at("destination_topic"));
        } else {
          source = inline_topics(o);
          destination = "(same topic)";
        }
        return std::vector<std::string>{text_of(o.at("pipeline_id")),
                                        text_of(o.at("state")),
                                        stream ? "stream" : "inline",
                                        source,
                                        destination,
                                        text_of(o.at("origin")),
                                        text_of(o.at("priority")),
                                        std::to_string(o.at("stages").as_array().size()),
                                        text_of(o.at("name"))};
      });
}

// An answer's `warnings`, on stderr.
void print_warnings(const json::value& answer) {
  if (!answer.is_object()) return;
  if (const json::value* warnings = answer.as_object().if_contains("warnings")) {
    for (const auto& w : warnings->as_array()) std::cerr << "warning: " << text_of(w) << "\n";
  }
}

struct ApplyOptions {
  Admin admin;
  std::string file;
};

// Creates the pipeline of FILE, or replaces it when one with its id exists: its pipeline_id, or
// the id its name gives (etl::pipeline_id_from_name), so applying a document twice changes
// nothing the second time. Warnings of the answer (modules not deployed) go to stderr too.
int apply(const ApplyOptions& o) {
  auto text = o.file == "-"
                  ? Result<std::string>(std::string(std::istreambuf_iterator<char>(std::cin), {}))
                  : read_file(o.file, 16 << 20);
  if (!text.is_ok()) {
    std::cerr << "error: " << text.status().message() << "\n";
    return 1;
  }
  // Parsed here, so that a syntax error names its line and column in the file.
  json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write(text->data(), text->size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < consumed && i < text->size(); ++i) {
      if ((*text)[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::cerr << "error: " << o.file << ":" << line << ":" << column
              << ": not valid JSON: " << ec.message() << "\n";
    return 1;
  }
  json::value doc = parser.release();
  if (!doc.is_object()) {
    std::cerr << "error: " << o.file << " is not a JSON object (a pipeline document is one)\n";
    return 1;
  }
  std::string id = etl::pipeline_id_from_name(doc.get_object());
  if (const json::value* given = doc.get_object().if_contains("pipeline_id");
      given && given->is_string()) {
    id = std::string(given->get_string());
  }
  std::string method = "POST", target = "/api/v1/etl/pipelines";
  if (!id.empty()) {
    HttpClient client(o.admin.url, o.admin.client_options());
    auto existing = client.request("GET", "/api/v1/etl/pipelines/" + url_encode(id));
    if (existing.is_ok() && existing->status == 200) {
      method = "PUT";
      target += "/" + url_encode(id);
    }
  }
  json::value answer;
  if (int rc = send(o.admin, method, target, *text, &answer); rc != 0) return rc;
  std::cout << json_text(answer) << "\n";
  print_warnings(answer);
  return 0;
}

struct TestOptions {
  Admin admin;
  std::string id, topic, input;
};

// Dry run: NDJSON messages from --input or stdin.
int test_pipeline(const TestOptions& o) {
  std::ifstream file;
  if (!o.input.empty()) {
    file.open(o.input);
    if (!file) {
      std::cerr << "error: cannot open " << o.input << "\n";
      return 1;
    }
  }
  std::istream& in = o.input.empty() ? std::cin : file;
  json::array messages;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    boost::system::error_code ec;
    json::value m = json::parse(line, ec);
    if (ec) {
      std::cerr << "error: line " << number << " is not JSON: " << ec.message() << "\n";
      return 1;
    }
    messages.push_back(std::move(m));
  }
  json::object body{{"messages", std::move(messages)}};
  if (!o.topic.empty()) body["topic"] = o.topic;
  json::value answer;
  if (int rc = send(o.admin, "POST", "/api/v1/etl/pipelines/" + url_encode(o.id) + "/test",
                    json::serialize(body), &answer);
      rc != 0) {
    return rc;
  }
  std::cout << json_text(answer) << "\n";
  print_warnings(answer);
  return 0;
}

}  // namespace

void add_etl_commands(CLI::App& app, int& exit_code) {
  CLI::App* module = app.add_subcommand("module", "WebAssembly modules on a broker (admin API)");
  module->require_subcommand(1);
  auto d = std::make_shared<DeployOptions>();
  CLI::App* deploy_cmd =
      with_admin(module->add_subcommand("deploy", "upload a .wasm module"), d->admin);
  deploy_cmd->add_option("file", d->file, "the .wasm file")->required();
  deploy_cmd->add_option("--name", d->name, "module name")->required();
  deploy_cmd->add_option("--version", d->version, "semantic version, e.g. 1.0.0")->required();
  deploy_cmd->add_option("--signature", d->signature_file,
                         "the signature made by `wasmq module sign` for this name and version "
                         "(base64, or its 64 raw bytes); sent as X-Module-Signature");
  deploy_cmd->callback([d, &exit_code] { exit_code = deploy(*d); });

  auto sg = std::make_shared<SignOptions>();
  CLI::App* sign_cmd = module->add_subcommand(
      "sign",
      "sign a .wasm file as name@version with an Ed25519 private key; prints the "
      "X-Module-Signature (base64)");
  sign_cmd->add_option("file", sg->file, "the .wasm file")->required();
  sign_cmd->add_option("--name", sg->name, "module name")->required();
  sign_cmd->add_option("--version", sg->version, "semantic version, e.g. 1.0.0")->required();
  sign_cmd->add_option("--key", sg->key_file, "Ed25519 private key, PKCS#8 PEM")->required();
  sign_cmd->callback([sg, &exit_code] { exit_code = sign(*sg); });

  auto ml = std::make_shared<Target>();
  CLI::App* mlist = with_admin(module->add_subcommand("list", "list modules"), ml->admin);
  mlist->add_flag("--json", ml->json_output, "print the API's JSON");
  mlist->callback([ml, &exit_code] { exit_code = list_modules(*ml); });

  auto mg = std::make_shared<Target>();
  CLI::App* mget =
      with_admin(module->add_subcommand("get", "a module's metadata (JSON)"), mg->admin);
  mget->add_option("id", mg->id, "name-vX.Y.Z, or a name for its newest version")->required();
  mget->callback([mg, &exit_code] {
    exit_code = send(mg->admin, "GET", "/api/v1/etl/modules/" + url_encode(mg->id));
  });

  auto md = std::make_shared<Target>();
  CLI::App* mdel =
      with_admin(module->add_subcommand("delete", "delete a module version"), md->admin);
  mdel->add_option("id", md->id, "name-vX.Y.Z")->required();
  mdel->callback([md, &exit_code] {
    exit_code = send(md->admin, "DELETE", "/api/v1/etl/modules/" + url_encode(md->id));
  });

  CLI::App* pipeline = app.add_subcommand("pipeline", "ETL pipelines on a broker (admin API)");
  pipeline->require_subcommand(1);
  auto a = std::make_shared<ApplyOptions>();
  CLI::App* apply_cmd = with_admin(
      pipeline->add_subcommand("apply", "create a pipeline from a JSON file, or replace it"),
      a->admin);
  apply_cmd->add_option("-f,--file", a->file, "the pipeline document (- for stdin)")->required();
  apply_cmd->callback([a, &exit_code] { exit_code = apply(*a); });

  auto pl = std::make_shared<Target>();
  CLI::App* plist = with_admin(pipeline->add_subcommand("list", "list pipelines"), pl->admin);
  plist->add_flag("--json", pl->json_output, "print the API's JSON");
  plist->callback([pl, &exit_code] { exit_code = list_pipelines(*pl); });

  struct Simple {
    const char* name;
    const char* help;
    const char* method;
    const char* suffix;
  };
  for (const Simple& s : {Simple{"get", "a pipeline's document (JSON)", "GET", ""},
                          Simple{"delete", "delete a pipeline", "DELETE", ""},
                          Simple{"start", "enable a pipeline", "POST", "/start"},
                          Simple{"stop", "disable a pipeline", "POST", "/stop"},
                          Simple{"status", "a pipeline's state", "GET", "/status"}}) {
    auto t = std::make_shared<Target>();
    CLI::App* cmd = with_admin(pipeline->add_subcommand(s.name, s.help), t->admin);
    cmd->add_option("id", t->id, "the pipeline id")->required();
    std::string method = s.method, suffix = s.suffix;
    cmd->callback([t, method, suffix, &exit_code] {
      exit_code = send(t->admin, method, "/api/v1/etl/pipelines/" + url_encode(t->id) + suffix);
    });
  }

  // Operating the broker.
  auto st = std::make_shared<Target>();
  CLI::App* status_cmd =
      with_admin(app.add_subcommand("status", "the broker's status (admin API, JSON)"), st->admin);
  status_cmd->callback([st, &exit_code] { exit_code = send(st->admin, "GET", "/api/v1/status"); });

  auto mt = std::make_shared<Target>();
  CLI::App* metrics_cmd =
      with_admin(app.add_subcommand(
                     "metrics", "the broker's metrics: JSON, or Prometheus text with --prometheus"),
                 mt->admin);
  metrics_cmd->add_flag("--prometheus", mt->json_output, "print GET /metrics (Prometheus text)");
  metrics_cmd->callback([mt, &exit_code] {
    exit_code = send(mt->admin, "GET", mt->json_output ? "/metrics" : "/api/v1/metrics");
  });

  // `wasmq config reload` beside `wasmq config check` (config_command.cc).
  CLI::App* config = nullptr;
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "config"; })) {
    config = sub;
  }
  if (config) {
    auto rt = std::make_shared<Target>();
    CLI::App* reload =
        with_admin(config->add_subcommand("reload",
                                          "make a running broker re-read its configuration file "
                                          "(pipelines applied; other changes listed)"),
                   rt->admin);
    reload->callback([rt, &exit_code] {
      exit_code = send(rt->admin, "POST", "/api/v1/config/reload",
                       R"({"component": "etl", "graceful": true})");
    });
  }

  auto tt = std::make_shared<TestOptions>();
  CLI::App* test_cmd =
      with_admin(pipeline->add_subcommand("test",
                                          "dry run: NDJSON messages from stdin through a pipeline, "
                                          "nothing stored"),
                 tt->admin);
  test_cmd->add_option("id", tt->id, "the pipeline id")->required();
  test_cmd->add_option("--topic", tt->topic,
                       "the topic the messages are produced to (default: a stream pipeline's "
                       "source_topic; for an inline pipeline the one topic its Exact filters "
                       "name, else \"test\")");
  test_cmd->add_option("--input", tt->input, "NDJSON file instead of stdin");
  test_cmd->callback([tt, &exit_code] { exit_code = test_pipeline(*tt); });
}

}  // namespace wasmq::cli
