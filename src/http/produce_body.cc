#include "http/produce_body.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <span>

#include "common/message_json.h"

namespace wasmq::http {
namespace json = boost::json;

std::string ProduceBody::path(size_t i) const {
  return single ? std::string() : fmt::format("messages[{}]", i);
}

Status too_many_messages(size_t count, size_t max_messages) {
  return Status(StatusCode::kLimitExceeded,
                fmt::format("{} messages exceed the limit of {} per produce request; send them in "
                            "several requests",
                            count, max_messages),
                "messages");
}

Result<ProduceBody> read_produce_body(const json::value& body, int64_t now, size_t max_messages) {
  ProduceBody out;
  std::span<const json::value> list;
  if (body.is_array()) {
    list = std::span(body.get_array().data(), body.get_array().size());
  } else if (const json::object* o = body.if_object(); o && o->contains("messages")) {
    const json::value& messages = o->at("messages");
    if (!messages.is_array()) return field_error("messages", "must be an array of message objects");
    if (o->size() != 1) {
      return Status(StatusCode::kInvalidArgument,
                    "only \"messages\" may stand beside the message list");
    }
    list = std::span(messages.get_array().data(), messages.get_array().size());
  } else {
    list = std::span(&body, 1);
    out.single = true;
  }
  if (list.empty()) return Status(StatusCode::kInvalidArgument, "the body lists no messages", "messages");
  if (list.size() > max_messages) return too_many_messages(list.size(), max_messages);
  out.views.messages.reserve(list.size());
  out.partitions.resize(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    if (Status s = out.views.add(list[i], now); !s.is_ok()) return s.within(out.path(i));
    const json::value* p = list[i].get_object().if_contains("partition");
    if (p && !p->is_null()) {
      if (!p->is_int64() || p->get_int64() < 0 || p->get_int64() > UINT32_MAX) {
        return field_error("partition", "must be a non-negative integer").within(out.path(i));
      }
      out.partitions[i] = static_cast<uint32_t>(p->get_int64());
    }
  }
  out.views.finish();
  return out;
}

}  // namespace wasmq::http
