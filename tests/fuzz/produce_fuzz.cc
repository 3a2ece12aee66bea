// Fuzzes HTTP produce bodies (POST /topics/{topic}/messages, http-api.md): the JSON document, the
// three shapes it may take (one message, an array, {"messages": [...]}) as the data API reads them
// (src/http/data_api.cc), and each message through message_from_json (src/common/message_json.h).
// Accepted messages then go where the broker sends them: into one RecordBatch.
//
// The data API reads the messages as views into the document (MessageViews) and, for a topic
// without pipelines, encodes the batch straight from them.
//
// Invariants: no crash; an accepted message written by message_to_json reads back equal; the
// views accept exactly the messages message_from_json accepts, and copy out to them; a batch
// of accepted messages encodes and decodes back to the same messages, and the batch encoded from
// the views is byte for byte the batch encoded from the messages.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/message_json.h"
#include "fuzz_check.h"
#include "json_input.h"
#include "storage/record_batch.h"

using namespace wasmq;
namespace json = boost::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json::monotonic_resource arena(size * 2 + 1024);
  auto body = fuzz::parse_api_json(data, size, &arena);
  if (!body) return 0;

  json::array single;
  const json::array* list = nullptr;
  if (body->is_array()) {
    list = &body->get_array();
  } else if (body->is_object() && body->get_object().contains("messages")) {
    const json::value& messages = body->get_object().at("messages");
    if (!messages.is_array() || body->get_object().size() != 1) return 0;
    list = &messages.get_array();
  } else {
    single.push_back(*body);
    list = &single;
  }

  constexpr int64_t kNow = 1'700'000'000'000;
  std::vector<Message> accepted;
  MessageViews views;
  for (const json::value& element : *list) {
    Message message;
    const Status read = message_from_json(element, kNow, &message);
    const Status viewed = views.add(element, kNow);
    FUZZ_CHECK(read.is_ok() == viewed.is_ok() && read.message() == viewed.message() &&
                   read.field() == viewed.field(),
               "the views and message_from_json disagree: " + read.message() + " / " +
                   viewed.message());
    if (!read.is_ok()) continue;
    Message again;
    const json::value written = message_to_json(message);
    Status st = message_from_json(written, 0, &again);
    FUZZ_CHECK(st.is_ok(), "message_to_json's object is refused: " + st.message());
    FUZZ_CHECK(again == message, "message changed on the way back: " + json::serialize(written));
    accepted.push_back(std::move(message));
  }
  if (accepted.empty()) return 0;

  views.finish();
  FUZZ_CHECK(views.messages.size() == accepted.size(), "view count");
  for (size_t i = 0; i < accepted.size(); ++i) {
    FUZZ_CHECK(views.messages[i].to_message() == accepted[i], "view " + std::to_string(i));
  }
  std::string batch;
  storage::encode_batch(0, accepted, &batch);
  std::string from_views;
  storage::encode_batch(0, std::span<const MessageView>(views.messages), &from_views);
  FUZZ_CHECK(from_views == batch, "the batch encoded from views differs");
  std::vector<storage::Record> records;
  Status st = storage::decode_batch(fuzz::bytes_of(batch), &records);
  FUZZ_CHECK(st.is_ok(), "the produced batch does not decode: " + st.message());
  FUZZ_CHECK(records.size() == accepted.size(), "record count");
  for (size_t i = 0; i < records.size(); ++i) {
    FUZZ_CHECK(records[i].message == accepted[i], "message " + std::to_string(i) + " changed");
  }
  return 0;
}
