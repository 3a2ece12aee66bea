// The message model shared by storage, ETL and the module ABI (module-abi.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wasmq {

// One header. Names are unique within a message; the order carries no meaning.
using Header = std::pair<std::string, std::string>;

// A message as modules see it. `value` holds arbitrary bytes; `key`, header names and header
// values are UTF-8. `timestamp` is milliseconds since the Unix epoch.
struct Message {
  std::optional<std::string> key;
  std::string value;
  std::vector<Header> headers;
  int64_t timestamp = 0;

  // Returns the value of header `name`, or nullptr when absent.
  const std::string* header(std::string_view name) const;
  // Sets header `name`, replacing an existing one.
  void set_header(std::string name, std::string value);

  bool operator==(const Message& other) const;
};

// What a module returns for one input message (module-abi.md, "Meaning of a ProcessResult").
struct ProcessResult {
  std::vector<Message> transformed_messages;
  bool should_continue = true;
  std::optional<std::string> error;

  bool operator==(const ProcessResult& other) const = default;
};

}  // namespace wasmq
