#include "cli/group_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/admin_client.h"
#include "common/json_text.h"
#include "http/client.h"

namespace wasmq::cli {
namespace {

namespace json = boost::json;

std::string text(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  return json_text(v);
}

struct Options {
  AdminEndpoint admin;
  std::string group;
  bool json_output = false;
};

int list(const Options& o) {
  if (o.json_output) return admin_request(o.admin, "GET", "/api/v1/groups");
  json::value v;
  if (int rc = admin_request(o.admin, "GET", "/api/v1/groups", "", &v); rc != 0) return rc;
  std::vector<std::vector<std::string>> rows = {{"GROUP", "STATE", "MEMBERS", "PARTITIONS", "LAG"}};
  for (const auto& g : v.at("groups").as_array()) {
    rows.push_back({text(g.at("group_id")), text(g.at("state")), text(g.at("members")),
                    text(g.at("committed_partitions")), text(g.at("lag"))});
  }
  if (rows.size() == 1) {
    std::cout << "no consumer groups\n";
    return 0;
  }
  print_table(rows);
  return 0;
}

int describe(const Options& o) {
  const std::string target = "/api/v1/groups/" + http::url_encode(o.group);
  if (o.json_output) return admin_request(o.admin, "GET", target);
  json::value v;
  if (int rc = admin_request(o.admin, "GET", target, "", &v); rc != 0) return rc;
  std::cout << "group " << text(v.at("group_id")) << ": " << text(v.at("state"));
  if (!v.at("protocol").as_string().empty()) {
    std::cout << ", generation " << text(v.at("generation")) << ", protocol "
              << text(v.at("protocol_type")) << "/" << text(v.at("protocol"));
  }
  std::cout << ", lag " << text(v.at("lag")) << "\n";
  // Who holds which partition, from the members' assignments.
  std::map<std::pair<std::string, int64_t>, std::string> owner;
  const auto& members = v.at("members").as_array();
  if (!members.empty()) {
    std::vector<std::vector<std::string>> rows = {{"MEMBER", "CLIENT", "HOST", "ASSIGNMENT"}};
    for (const auto& m : members) {
      std::string assignment;
      if (const auto* a = m.as_object().if_contains("assignment")) {
        for (const auto& t : a->as_array()) {
          for (const auto& p : t.at("partitions").as_array()) {
            if (!assignment.empty()) assignment += ",";
            assignment += text(t.at("topic")) + "/" + text(p);
            owner[{text(t.at("topic")), p.to_number<int64_t>()}] = text(m.at("member_id"));
          }
        }
      }
      rows.push_back({text(m.at("member_id")), text(m.at("client_id")), text(m.at("client_host")),
                      assignment.empty() ? "-" : assignment});
    }
    std::cout << "\n";
    print_table(rows);
  }
  std::vector<std::vector<std::string>> rows = {
      {"TOPIC", "PARTITION", "COMMITTED", "LOG START", "HIGH WATERMARK", "LAG", "MEMBER"}};
  for (const auto& p : v.at("offsets").as_array()) {
    auto it = owner.find({text(p.at("topic")), p.at("partition").to_number<int64_t>()});
    rows.push_back({text(p.at("topic")), text(p.at("partition")), text(p.at("committed_offset")),
                    text(p.at("log_start_offset")), text(p.at("high_watermark")), text(p.at("lag")),
                    it == owner.end() ? "-" : it->second});
  }
  std::cout << "\n";
  if (rows.size() == 1) {
    std::cout << "no committed offsets\n";
  } else {
    print_table(rows);
  }
  return 0;
}

}  // namespace

void add_group_commands(CLI::App& app, int& exit_code) {
  CLI::App* groups = app.add_subcommand(
      "groups", "consumer groups (Kafka clients' and HTTP's group=): members, offsets, lag");
  groups->require_subcommand(1);

  auto lo = std::make_shared<Options>();
  CLI::App* list_cmd = with_admin(
      groups->add_subcommand("list", "every group: state, members, committed partitions, lag"),
      lo->admin);
  list_cmd->add_flag("--json", lo->json_output, "print the API's JSON");
  list_cmd->callback([lo, &exit_code] { exit_code = list(*lo); });

  auto dop = std::make_shared<Options>();
  CLI::App* describe_cmd = with_admin(
      groups->add_subcommand("describe",
                             "one group: members and assignments, committed offset and lag per "
                             "partition (e.g. wasmq groups describe billing)"),
      dop->admin);
  describe_cmd->add_option("group", dop->group, "the group id")->required();
  describe_cmd->add_flag("--json", dop->json_output, "print the API's JSON");
  describe_cmd->callback([dop, &exit_code] { exit_code = describe(*dop); });
}

}  // namespace wasmq::cli
