#include "http/groups_api.h"

#include <boost/json.hpp>

#include "http/admin_api.h"
#include "http/json_response.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

json::value or_null(int64_t v) { return v < 0 ? json::value(nullptr) : json::value(v); }

class GroupsApi {
 public:
  GroupsApi(const broker::GroupCoordinator& groups, const storage::TopicStore& store)
      : groups_(groups), store_(store) {}

  awaitable<Response> list(Request&) {
    json::array out;
    for (const auto& g : groups_.list()) {
      const auto lags = broker::group_lag(groups_.committed(g.group_id), store_);
      out.push_back(json::object{{"group_id", g.group_id},
                                 {"state", g.state},
                                 {"protocol_type", g.protocol_type},
                                 {"members", g.members.size()},
                                 {"committed_partitions", lags.size()},
                                 {"lag", broker::total_lag(lags)}});
    }
    co_return json_response(HttpStatus::ok, json::object{{"groups", std::move(out)}});
  }

  awaitable<Response> describe(Request& req) {
    const std::string id(req.path_param("group"));
    auto g = groups_.describe(id);
    if (!g) {
      co_return error_response(HttpStatus::not_found, "not_found",
                               "group \"" + id + "\" does not exist (no members, no committed offsets)");
    }
    json::array members;
    for (const auto& m : g->members) {
      json::object o{{"member_id", m.member_id},
                     {"client_id", m.client_id},
                     {"client_host", m.client_host}};
      if (g->protocol_type == "consumer") {
        if (auto assigned = broker::decode_consumer_assignment(m.assignment)) {
          json::array assignment;
          for (const auto& [topic, partitions] : *assigned) {
            json::array ps;
            for (int32_t p : partitions) ps.push_back(p);
            assignment.push_back(json::object{{"topic", topic}, {"partitions", std::move(ps)}});
          }
          o["assignment"] = std::move(assignment);
        }
      }
      members.push_back(std::move(o));
    }
    const auto lags = broker::group_lag(groups_.committed(id), store_);
    json::array offsets;
    for (const auto& l : lags) {
      offsets.push_back(json::object{{"topic", l.topic},
                                     {"partition", l.partition},
                                     {"committed_offset", l.committed},
                                     {"metadata", l.metadata},
                                     {"log_start_offset", or_null(l.log_start_offset)},
                                     {"high_watermark", or_null(l.high_watermark)},
                                     {"lag", or_null(l.lag)}});
    }
    co_return json_response(HttpStatus::ok,
                             json::object{{"group_id", g->group_id},
                                          {"state", g->state},
                                          {"protocol_type", g->protocol_type},
                                          {"protocol", g->protocol},
                                          {"generation", g->generation},
                                          {"members", std::move(members)},
                                          {"offsets", std::move(offsets)},
                                          {"lag", broker::total_lag(lags)}});
  }

 private:
  const broker::GroupCoordinator& groups_;
  const storage::TopicStore& store_;
};

}  // namespace

Status add_groups_api(Router& router, const broker::GroupCoordinator& groups,
                      const storage::TopicStore& store) {
  auto api = std::make_shared<GroupsApi>(groups, store);
  return add_admin_routes<GroupsApi>(router, api,
                                     {
                                         {Verb::get, "/api/v1/groups", &GroupsApi::list},
                                         {Verb::get, "/api/v1/groups/{group}", &GroupsApi::describe},
                                     });
}

}  // namespace wasmq::http
