// Writes the binary seed inputs of the fuzz targets with the project's own encoders, so that the
// seeds always follow the current formats: `fuzz_seed_gen <dir>` fills <dir>/<target>/.
// Storage seeds start with the mode byte of batch_bytes.h (1: make CRCs right).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/bincode.h"
#include "kafka/wire.h"
#include "storage/record_batch.h"

using namespace wasmq;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<Message> sample_messages(int count, int64_t timestamp) {
  std::vector<Message> messages;
  for (int i = 0; i < count; ++i) {
    Message m;
    if (i % 2 == 0) m.key = "sensor-" + std::to_string(i);
    m.value = i % 3 == 0 ? std::string("{\"temperature\": 21.5}") : std::string("\x00\xff\x10", 3);
    if (i % 2 == 1) m.headers = {{"source", "fuzz"}, {"content-type", "application/json"}};
    m.timestamp = timestamp + i * 7;
    messages.push_back(std::move(m));
  }
  return messages;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seed_gen <dir>\n");
    return 2;
  }
  const fs::path dir = argv[1];

  // One batch, several, and a log whose tail is torn.
  std::string one;
  storage::encode_batch(0, sample_messages(3, 1'700'000'000'000), &one);
  std::string several;
  int64_t offset = 0;
  for (int batch = 0; batch < 6; ++batch) {
    auto messages = sample_messages(1 + batch, 1'700'000'000'000 + batch);
    storage::encode_batch(offset, messages, &several);
    offset += static_cast<int64_t>(messages.size());
  }
  const std::string torn = several.substr(0, several.size() - 9);
  for (const char mode : {'\0', '\1'}) {
    const std::string suffix = mode ? "-fix-crc" : "";
    write(dir / "record_batch" / ("one-batch" + suffix), mode + one);
    write(dir / "partition_log" / ("one-batch" + suffix), mode + one);
    write(dir / "partition_log" / ("six-batches" + suffix), mode + several);
    write(dir / "partition_log" / ("torn-tail" + suffix), mode + torn);
  }
  write(dir / "record_batch" / "empty-key-and-value-fix-crc", [] {
    std::string b;
    Message m;
    m.key = "";
    storage::encode_batch(42, std::vector<Message>{m}, &b);
    return '\1' + b;
  }());

  // The module ABI: a batch of messages and a batch of results.
  const auto messages = sample_messages(4, -5);
  write(dir / "bincode" / "vec-message", bincode::to_bytes(std::span<const Message>(messages)));
  std::vector<ProcessResult> results(2);
  results[0].transformed_messages = sample_messages(2, 9);
  results[1].should_continue = false;
  results[1].error = "module said no";
  write(dir / "bincode" / "vec-result", bincode::to_bytes(std::span<const ProcessResult>(results)));

  // Kafka request frames (without the size prefix): a Produce v7 of one good batch, a Fetch v11
  // and a Metadata v4, as a client sends them.
  auto frame = [](int16_t key, int16_t version, auto body) {
    std::string out;
    kafka::Writer w(&out);
    w.i16(key);
    w.i16(version);
    w.i32(7);
    w.nullable_string("fuzz");
    body(w);
    return out;
  };
  write(dir / "kafka_request" / "produce-v7", frame(0, 7, [&](kafka::Writer& w) {
          w.nullable_string(std::nullopt);
          w.i16(-1);
          w.i32(30000);
          w.array_length(1);
          w.string("topic-a");
          w.array_length(1);
          w.i32(0);
          w.bytes(one);
        }));
  write(dir / "kafka_request" / "fetch-v11", frame(1, 11, [](kafka::Writer& w) {
          w.i32(-1);
          w.i32(500);
          w.i32(1);
          w.i32(52428800);
          w.i8(0);
          w.i32(0);
          w.i32(-1);
          w.array_length(1);
          w.string("topic-a");
          w.array_length(1);
          w.i32(0);
          w.i32(-1);
          w.i64(0);
          w.i64(-1);
          w.i32(1048576);
          w.array_length(0);
          w.string("");
        }));
  write(dir / "kafka_request" / "metadata-v4", frame(3, 4, [](kafka::Writer& w) {
          w.array_length(1);
          w.string("topic-a");
          w.boolean(true);
        }));
  return 0;
}
