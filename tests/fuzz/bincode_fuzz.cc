// Fuzzes the module ABI's bincode decoders (src/common/bincode.h): the bytes a guest module
// hands back as its ProcessResult, and the message encodings.
//
// Invariants: no decoder crashes; whatever a decoder accepts encodes to at most the input's size
// (the decoders take nothing the encoders would not write: no trailing bytes, tags and bools of
// 0/1 only; a repeated header name keeps its last value, as a HashMap does, so the encoding may
// be shorter), and that encoding decodes to the same value and encodes to itself again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/bincode.h"
#include "fuzz_check.h"

using namespace wasmq;

namespace {

template <typename T, typename Decoded>
void check_round_trip(std::span<const uint8_t> input, const T& value, const Decoded& decoded,
                      const char* what) {
  const std::string encoded = bincode::to_bytes(value);
  FUZZ_CHECK(encoded.size() <= input.size(), std::string(what) + ": encoding grew");
  if (encoded.size() == input.size()) {
    FUZZ_CHECK(std::equal(encoded.begin(), encoded.end(), input.begin(),
                          [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; }),
               std::string(what) + ": re-encoding differs from the accepted input");
  }
  Decoded again;
  Status st = bincode::decode(fuzz::bytes_of(encoded), &again);
  FUZZ_CHECK(st.is_ok(), std::string(what) + ": its own encoding is refused: " + st.message());
  FUZZ_CHECK(again == decoded, std::string(what) + ": the value changed on the way back");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);

  Message message;
  if (bincode::decode(input, &message).is_ok()) check_round_trip(input, message, message, "Message");

  ProcessResult result;
  if (bincode::decode(input, &result).is_ok()) {
    check_round_trip(input, result, result, "ProcessResult");
  }

  std::vector<Message> messages;
  if (bincode::decode(input, &messages).is_ok()) {
    check_round_trip(input, std::span<const Message>(messages), messages, "Vec<Message>");
  }

  std::vector<ProcessResult> results;
  if (bincode::decode(input, &results).is_ok()) {
    check_round_trip(input, std::span<const ProcessResult>(results), results, "Vec<ProcessResult>");
  }
  return 0;
}
