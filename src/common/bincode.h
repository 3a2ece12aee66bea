// The wire format of the module ABI: bincode 1.x with default options (module-abi.md).
//
// Little-endian fixed-width integers, u64 lengths, Option as a u8 tag, HashMap as a u64 count
// of (key, value) pairs. Encoders write into a caller-provided buffer sized by encoded_size(),
// so the host can encode straight into guest memory. Decoders are strict and bounded: they
// reject truncated input, trailing bytes, lengths beyond the remaining input, invalid UTF-8 and
// bool bytes other than 0/1, messages with more headers than kMaxHeaders or kMaxHeaderBytes
// (message.h), and never allocate more than the input could describe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"

namespace wasmq::bincode {

size_t encoded_size(const Message& message);
size_t encoded_size(const MessageView& message);
size_t encoded_size(const ProcessResult& result);
// Size of a Vec<Message>: of the messages, or of the messages pointed to.
size_t encoded_size(std::span<const Message> messages);
size_t encoded_size(std::span<const Message* const> messages);

// Each writes exactly encoded_size(x) bytes starting at `out` and returns the end.
uint8_t* encode(const Message& message, uint8_t* out);
uint8_t* encode(const ProcessResult& result, uint8_t* out);
uint8_t* encode(std::span<const Message> messages, uint8_t* out);
uint8_t* encode(std::span<const Message* const> messages, uint8_t* out);

// Convenience: the encoding as a byte string.
std::string to_bytes(const Message& message);
std::string to_bytes(const ProcessResult& result);
std::string to_bytes(std::span<const Message> messages);
std::string to_bytes(std::span<const ProcessResult> results);

// Each decodes the whole input as one value; on error the output is unspecified.
Status decode(std::span<const uint8_t> input, Message* out);
Status decode(std::span<const uint8_t> input, ProcessResult* out);
Status decode(std::span<const uint8_t> input, std::vector<Message>* out);
Status decode(std::span<const uint8_t> input, std::vector<ProcessResult>* out);

inline std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace wasmq::bincode
