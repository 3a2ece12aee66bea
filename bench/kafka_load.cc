// wasmq-kafka-load: a Kafka load generator of our own on librdkafka (Debian's librdkafka-dev),
// for `make bench` (bench/kafka_bench.py).
//
//   wasmq-kafka-load produce (--bootstrap HOST:PORT | --mock) --topic T --messages N
//                    [--value-bytes 100] [--linger-ms 5] [--compression none]
//   wasmq-kafka-load consume --bootstrap HOST:PORT --topic T --messages N [--partitions 1]
//
// produce: an idempotent producer (acks=all, enable.idempotence=true) sends N messages of
// --value-bytes bytes with keys, and waits for every delivery report; --mock runs it against
// librdkafka's own in-memory mock cluster (rdkafka_mock.h) in this process instead, the
// baseline. consume: assigns every partition from the beginning and reads N messages.
// Prints one JSON line: messages, seconds, messages_per_second, errors.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode, bootstrap, topic = "bench", compression = "none";
  long messages = 1'000'000;
  int value_bytes = 100, linger_ms = 5, partitions = 1;
  bool mock = false;
};

std::atomic<long> delivered{0}, failed{0};
std::string first_error;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) {
    if (failed.fetch_add(1) == 0) first_error = rd_kafka_err2str(m->err);
  } else {
    delivered.fetch_add(1);
  }
}

bool set(rd_kafka_conf_t* conf, const char* key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "%s: %s\n", key, err);
    return false;
  }
  return true;
}

void report(long messages, double seconds, long errors) {
  std::printf("{\"messages\": %ld, \"seconds\": %.3f, \"messages_per_second\": %.1f, \"errors\": %ld%s%s%s}\n",
              messages, seconds, seconds > 0 ? static_cast<double>(messages) / seconds : 0.0, errors,
              first_error.empty() ? "" : ", \"first_error\": \"", first_error.c_str(),
              first_error.empty() ? "" : "\"");
}

int produce(const Options& o) {
  rd_kafka_mock_cluster_t* mock = nullptr;
  rd_kafka_t* mock_owner = nullptr;
  std::string bootstrap = o.bootstrap;
  char err[512];
  if (o.mock) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!mock_owner) return std::fprintf(stderr, "%s\n", err), 1;
    mock = rd_kafka_mock_cluster_new(mock_owner, 1);
    if (!mock) return std::fprintf(stderr, "cannot start the mock cluster\n"), 1;
    rd_kafka_mock_topic_create(mock, o.topic.c_str(), o.partitions, 1);
    bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!set(conf, "bootstrap.servers", bootstrap) || !set(conf, "acks", "all") ||
      !set(conf, "enable.idempotence", "true") || !set(conf, "linger.ms", std::to_string(o.linger_ms)) ||
      !set(conf, "compression.type", o.compression) ||
      !set(conf, "queue.buffering.max.messages", "1000000")) {
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) return std::fprintf(stderr, "%s\n", err), 1;
  const std::string value(static_cast<size_t>(o.value_bytes), 'x');
  // Connected and the topic's metadata known before the clock starts.
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_topic_t* topic = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  rd_kafka_metadata(rk, 0, topic, &metadata, 10000);
  if (metadata) rd_kafka_metadata_destroy(metadata);
  const auto start = Clock::now();
  for (long i = 0; i < o.messages; ++i) {
    const std::string key = "key-" + std::to_string(i % 1000);
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
        return 1;
      }
      rd_kafka_poll(rk, 10);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 120000);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report(delivered.load(), seconds, failed.load() + (o.messages - delivered.load() - failed.load()));
  rd_kafka_topic_destroy(topic);
  rd_kafka_destroy(rk);
  if (mock) rd_kafka_mock_cluster_destroy(mock);
  if (mock_owner) rd_kafka_destroy(mock_owner);
  return 0;
}

int consume(const Options& o) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!set(conf, "bootstrap.servers", o.bootstrap) || !set(conf, "group.id", "wasmq-kafka-load") ||
      !set(conf, "enable.auto.commit", "false") || !set(conf, "enable.partition.eof", "false")) {
    return 2;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) return std::fprintf(stderr, "%s\n", err), 1;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(o.partitions);
  for (int p = 0; p < o.partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, o.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  long count = 0, errors = 0;
  Clock::time_point start{};
  const auto give_up = Clock::now() + std::chrono::seconds(120);
  while (count < o.messages && Clock::now() < give_up) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (!m) continue;
    if (m->err) {
      if (errors++ == 0) first_error = rd_kafka_message_errstr(m);
    } else {
      // The clock starts at the first message: connecting is not reading.
      if (count++ == 0) start = Clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report(count, seconds, errors);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return count == o.messages ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) return std::fprintf(stderr, "usage: wasmq-kafka-load produce|consume [flags]\n"), 2;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--mock") {
      o.mock = true;
      continue;
    }
    if (i + 1 >= argc) return std::fprintf(stderr, "%s needs a value\n", flag.c_str()), 2;
    std::string value = argv[++i];
    if (flag == "--bootstrap") o.bootstrap = value;
    else if (flag == "--topic") o.topic = value;
    else if (flag == "--messages") o.messages = std::stol(value);
    else if (flag == "--value-bytes") o.value_bytes = std::stoi(value);
    else if (flag == "--linger-ms") o.linger_ms = std::stoi(value);
    else if (flag == "--partitions") o.partitions = std::stoi(value);
    else if (flag == "--compression") o.compression = value;
    else return std::fprintf(stderr, "unknown flag %s\n", flag.c_str()), 2;
  }
  if (o.mode == "produce") return produce(o);
  if (o.mode == "consume") return consume(o);
  return std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str()), 2;
}
