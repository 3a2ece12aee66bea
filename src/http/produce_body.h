// The message list of a produce request (POST /api/v1/topics/{topic}/messages) and of a
// pipeline dry run (POST /api/v1/etl/pipelines/{id}/test): one reader, so that both accept the
// same shapes and name a bad field the same way.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/message_json.h"
#include "common/status.h"

namespace wasmq::http {

struct ProduceBody {
  // The messages, as views into the body's JSON document (which must outlive them).
  MessageViews views;
  std::vector<std::optional<uint32_t>> partitions;  // per message: "partition", when given
  bool single = false;  // the body was one message object, not a list

  size_t size() const { return views.messages.size(); }

  // Where message i sits, for errors: "messages[i]" in a list (a bare array or under
  // "messages"), "" for a single message.
  std::string path(size_t i) const;
};

// kLimitExceeded (field "messages") for a body of `count` messages, above `max_messages`.
Status too_many_messages(size_t count, size_t max_messages);

// Reads `body`: one message object, an array of them, or {"messages": [...]} with nothing
// beside the list. Messages are read by MessageViews::add (common/message_json.h), timestamped
// `now` when they carry none; "partition" must be an integer from 0 to 2^32-1 or null.
// Errors carry a field (Status::field): kInvalidArgument "messages[1].headers.a: must be a
// string", "messages: must be an array of message objects", "the body lists no messages" (field
// "messages" for an empty list); kLimitExceeded (field "messages") for more than
// `max_messages`, checked before any message is read.
Result<ProduceBody> read_produce_body(const boost::json::value& body, int64_t now,
                                      size_t max_messages = std::numeric_limits<size_t>::max());

}  // namespace wasmq::http
