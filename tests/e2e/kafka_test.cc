// The Kafka protocol as Kafka's own clients speak it (docs/kafka.md): kcat, librdkafka through
// python3-confluent-kafka, and kafka-python, against the real binary on loopback ports. None of
// these clients is ours; `scripts/bootstrap.sh` installs them from Debian.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "broker_api_test.h"
#include "command.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::quote;
using testing::shell;

// Debian's Python, which sees Debian's Kafka client modules.
constexpr char kPython[] = "/usr/bin/python3";

class KafkaTest : public testing::BrokerApiTest {
 protected:
  void start_with_kafka(const std::string& extra = "") {
    start("[kafka]\nlisten = \"127.0.0.1:0\"\n" + extra);
    kafka_ = broker_->kafka_address();
    ASSERT_FALSE(kafka_.empty()) << "no \"Kafka API on\" line";
  }
  testing::CommandRun kcat(const std::string& args, const std::string& input = "") {
    return shell("timeout 60 kcat -b " + kafka_ + " " + args, input);
  }
  // Runs a Python script (with the broker's Kafka address as BOOTSTRAP).
  testing::CommandRun python(const std::string& script) {
    const fs::path file = dir() / "client.py";
    fs::create_directories(dir());
    std::ofstream(file) << "BOOTSTRAP = '" << kafka_ << "'\n" << script;
    return shell(std::string("timeout 120 ") + kPython + " " + quote(file.string()));
  }
  // Runs a Node.js script with KafkaJS (installed by scripts/bootstrap.sh into .deps/kafkajs).
  testing::CommandRun node(const std::string& script) {
    const fs::path file = dir() / "client.js";
    fs::create_directories(dir());
    std::ofstream(file) << "const BOOTSTRAP = '" << kafka_ << "';\n"
                        << "const { Kafka, logLevel } = require('" << WASMQ_SOURCE_DIR
                        << "/.deps/kafkajs/node_modules/kafkajs');\n"
                        << script;
    return shell("timeout 120 node " + quote(file.string()));
  }
  // A folder beside the broker's (which start() empties), removed after the test.
  fs::path secrets() {
    const fs::path d = testing::test_temp_dir("wasmq-kafka-secrets");
    fs::create_directories(d);
    return d;
  }
  void TearDown() override {
    testing::BrokerApiTest::TearDown();
    fs::remove_all(testing::test_temp_dir("wasmq-kafka-secrets"));
  }
  std::string kafka_;
};

TEST_F(KafkaTest, KcatReadsMetadataProducesWithKeysAndHeadersAndConsumesFromTheBeginning) {
  start_with_kafka();
  auto metadata = kcat("-L");
  ASSERT_EQ(metadata.exit_code, 0) << metadata.err;
  EXPECT_NE(metadata.out.find("broker 0 at " + kafka_), std::string::npos) << metadata.out;

  auto produced = kcat("-P -t events -K: -H source=kcat -H trace=t-1", "k1:first\nk2:second value\n:no key\n");
  ASSERT_EQ(produced.exit_code, 0) << produced.err;
  auto consumed = kcat("-C -t events -o beginning -e -f '%k|%s|%h|%p|%o\\n'");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_EQ(consumed.out,
            "k1|first|source=kcat,trace=t-1|0|0\n"
            "k2|second value|source=kcat,trace=t-1|0|1\n"
            "|no key|source=kcat,trace=t-1|0|2\n");
  // The topic was created through Metadata, with the broker's default partitions.
  json::value topic = data("GET", "/api/v1/topics/events");
  EXPECT_EQ(topic.at("partitions").as_int64(), 1);
}

TEST_F(KafkaTest, HttpAndKafkaClientsSeeTheSameMessagesByteForByte) {
  start_with_kafka();
  // HTTP → Kafka: a JSON value, a key, headers.
  data("POST", "/api/v1/topics/cross/messages",
       R"({"messages":[{"key":"h-1","value":"{\"a\": [1, 2, \"x y\"]}","headers":{"content-type":"application/json"}},
                       {"key":"h-2","value":"tab\there ünïcödé"}]})");
  auto consumed = kcat("-C -t cross -o beginning -e -f '%k|%s|%h\\n'");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_EQ(consumed.out,
            "h-1|{\"a\": [1, 2, \"x y\"]}|content-type=application/json\n"
            "h-2|tab\there ünïcödé|\n");
  // Kafka → HTTP.
  ASSERT_EQ(kcat("-P -t cross -K: -H from=kafka", "k-3:value from kcat ü\n").exit_code, 0);
  json::array messages = consume("cross");
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[2].at("key").as_string(), "k-3");
  EXPECT_EQ(messages[2].at("value").as_string(), "value from kcat ü");
  EXPECT_EQ(messages[2].at("headers").at("from").as_string(), "kafka");
  EXPECT_EQ(messages[2].at("offset").as_int64(), 2);
}

TEST_F(KafkaTest, LibrdkafkaCreatesATopicProducesAndConsumesEveryPartition) {
  start_with_kafka();
  auto run = python(R"(
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({'bootstrap.servers': BOOTSTRAP})
for topic, future in admin.create_topics([NewTopic('four', 4, 1)]).items():
    future.result()
try:
    admin.create_topics([NewTopic('bad', 1, 3)])['bad'].result()
    print('replication 3 accepted')
except Exception as e:
    print('replication 3 refused:', 'INVALID_REPLICATION_FACTOR' in str(e))
from confluent_kafka.admin import ConfigResource
described = admin.describe_configs([ConfigResource('topic', 'four')])
configs = list(described.values())[0].result(10)
print('configs', configs['cleanup.policy'].value, int(configs['retention.ms'].value) > 0)
p = Producer({'bootstrap.servers': BOOTSTRAP, 'linger.ms': 5, 'acks': 'all'})
delivered = []
def report(err, msg):
    delivered.append((err, msg.partition(), msg.offset()))
for i in range(400):
    p.produce('four', key='key-%d' % i, value='value-%d' % i, headers={'n': str(i)}, on_delivery=report)
p.flush(30)
errors = [d for d in delivered if d[0] is not None]
print('delivered', len(delivered), 'errors', len(errors))
c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'unused', 'enable.auto.commit': False})
c.assign([TopicPartition('four', i, 0) for i in range(4)])
seen = {}
while len(seen) < 400:
    m = c.poll(10)
    if m is None:
        break
    if m.error():
        print('error', m.error())
        break
    seen[m.key().decode()] = (m.value().decode(), dict(m.headers())['n'].decode(), m.partition(), m.offset())
ok = all(seen['key-%d' % i][0] == 'value-%d' % i and seen['key-%d' % i][1] == str(i) for i in range(400))
print('consumed', len(seen), 'match', ok)
print('partitions', len({v[2] for v in seen.values()}))
# Each message's delivery report names the partition and offset it was consumed from.
reports = sorted((d[1], d[2]) for d in delivered)
print('reports match', reports == sorted((v[2], v[3]) for v in seen.values()))
low, high = c.get_watermark_offsets(TopicPartition('four', 0), timeout=10)
print('watermarks', low, high == sum(1 for v in seen.values() if v[2] == 0))
c.close()
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("replication 3 refused: True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("configs delete True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("delivered 400 errors 0"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("consumed 400 match True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("partitions 4"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("reports match True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("watermarks 0 True"), std::string::npos) << run.out;
  json::value topic = data("GET", "/api/v1/topics/four");
  EXPECT_EQ(topic.at("partitions").as_int64(), 4);
}

// Idempotent producers with every codec: batches compressed by the producer are stored as they
// came and read back by Kafka and HTTP consumers alike; through a pipeline they are decompressed,
// run, and the outputs stored with the producer's codec.
TEST_F(KafkaTest, EveryCodecOfLibrdkafkaIsStoredAndReadBack) {
  start_with_kafka();
  upload("etl_tagger", "tagger");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "codec", "stages": [
      {"priority": 0, "modules": [{"module_id": "tagger",
        "topic_filters": [{"filter_type": "Prefix", "pattern": "through-"}],
        "instance_config": {"custom_config": {"append": "+"}}}]}]})",
        201);
  auto run = python(R"(
from confluent_kafka import Producer, Consumer, TopicPartition
for codec, topic in [('none', 'c-none'), ('gzip', 'c-gzip'), ('snappy', 'c-snappy'), ('lz4', 'c-lz4'),
                     ('zstd', 'c-zstd'), ('lz4', 'through-lz4'), ('none', 'through-none')]:
    p = Producer({'bootstrap.servers': BOOTSTRAP, 'compression.type': codec, 'linger.ms': 20,
                  'enable.idempotence': True})
    errors = []
    for i in range(300):
        p.produce(topic, key='k%d' % i, value=('{"reading": %d, "pad": "%s"}' % (i, 'x' * 50)),
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    p.flush(30)
    c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'unused', 'enable.auto.commit': False})
    c.assign([TopicPartition(topic, 0, 0)])
    values = []
    while len(values) < 300:
        m = c.poll(10)
        if m is None or m.error():
            break
        values.append(m.value().decode())
    c.close()
    suffix = '+' if topic.startswith('through-') else ''
    ok = values == ['{"reading": %d, "pad": "%s"}%s' % (i, 'x' * 50, suffix) for i in range(300)]
    print(topic, 'errors', len(errors), 'consumed', len(values), 'match', ok)
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  for (const char* topic : {"c-none", "c-gzip", "c-snappy", "c-lz4", "c-zstd", "through-lz4", "through-none"}) {
    EXPECT_NE(run.out.find(std::string(topic) + " errors 0 consumed 300 match True"), std::string::npos)
        << topic << "\n" << run.out;
  }
  // The HTTP API reads the compressed batches too.
  json::array http = consume("c-zstd");
  ASSERT_EQ(http.size(), 300u);
  EXPECT_EQ(http[299].at("key").as_string(), "k299");
  // Stored compressed: the zstd partition is far smaller than the uncompressed one.
  const int64_t plain = data("GET", "/api/v1/topics/c-none").at("partition_details").at(0).at("size_bytes").as_int64();
  const int64_t zstd = data("GET", "/api/v1/topics/c-zstd").at("partition_details").at(0).at("size_bytes").as_int64();
  EXPECT_LT(zstd * 2, plain) << zstd << " vs " << plain;
  // librdkafka compresses with gzip, snappy and lz4 too (it checks the broker's Produce range).
  for (const char* topic : {"c-gzip", "c-snappy", "c-lz4"}) {
    const int64_t size =
        data("GET", std::string("/api/v1/topics/") + topic).at("partition_details").at(0).at("size_bytes").as_int64();
    EXPECT_LT(size * 2, plain) << topic << ": " << size << " vs " << plain;
  }
  // A pipeline's outputs are stored with the producer's codec.
  auto size_of = [&](const std::string& topic) {
    return data("GET", "/api/v1/topics/" + topic).at("partition_details").at(0).at("size_bytes").as_int64();
  };
  EXPECT_LT(size_of("through-lz4") * 2, size_of("through-none"))
      << size_of("through-lz4") << " vs " << size_of("through-none");
}

// A consumer group of two splits the partitions, commits, and after a restart of the broker
// resumes at its committed offsets.
TEST_F(KafkaTest, AConsumerGroupOfTwoSplitsThePartitionsAndResumesAfterARestart) {
  start_with_kafka();
  const std::string consume_script = R"(
import sys, threading, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
first, count = int(sys.argv[1]), int(sys.argv[2])
if first == 0:
    admin = AdminClient({'bootstrap.servers': BOOTSTRAP})
    admin.create_topics([NewTopic('grouped', 4, 1)])['grouped'].result()
p = Producer({'bootstrap.servers': BOOTSTRAP, 'enable.idempotence': True})
for i in range(first, first + count):
    p.produce('grouped', key='k%d' % i, value='v%d' % i)
p.flush(30)
seen, lock = {}, threading.Lock()
assigned = {}
def member(name):
    c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'pair', 'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False, 'session.timeout.ms': 6000})
    c.subscribe(['grouped'])
    deadline = time.time() + 40
    while time.time() < deadline:
        with lock:
            if len(seen) >= count and len(assigned) == 2 and all(len(v) == 2 for v in assigned.values()):
                break
        m = c.poll(0.2)
        assignment = sorted(tp.partition for tp in c.assignment())
        with lock:
            assigned[name] = assignment
        if m is None or m.error():
            continue
        with lock:
            seen[m.value().decode()] = seen.get(m.value().decode(), 0) + 1
        c.commit(message=m, asynchronous=False)
    c.close()
threads = [threading.Thread(target=member, args=(n,)) for n in ('a', 'b')]
[t.start() for t in threads]
[t.join() for t in threads]
expected = {'v%d' % i for i in range(first, first + count)}
print('consumed', len(seen), 'expected', set(seen) == expected, 'once', all(v == 1 for v in seen.values()))
print('split', sorted(assigned.get('a', [])) , sorted(assigned.get('b', [])))
)";
  auto run = python("import sys\nsys.argv = ['x', '0', '400']\n" + consume_script);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("consumed 400 expected True once True"), std::string::npos) << run.out;
  // Two members, two partitions each, none shared.
  EXPECT_TRUE(run.out.find("split [0, 1] [2, 3]") != std::string::npos ||
              run.out.find("split [2, 3] [0, 1]") != std::string::npos ||
              run.out.find("split [0, 2] [1, 3]") != std::string::npos ||
              run.out.find("split [1, 3] [0, 2]") != std::string::npos ||
              run.out.find("split [0, 3] [1, 2]") != std::string::npos ||
              run.out.find("split [1, 2] [0, 3]") != std::string::npos)
      << run.out;
  ASSERT_NO_FATAL_FAILURE(restart());
  kafka_ = broker_->kafka_address();
  // After the restart: only the new messages, exactly once.
  auto again = python("import sys\nsys.argv = ['x', '400', '100']\n" + consume_script);
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("consumed 100 expected True once True"), std::string::npos) << again.out;
}

// Kafka clients produce binary keys and header values: kept byte for byte, read back by Kafka
// consumers as they were, by HTTP consumers as base64 (and produced over HTTP the same way). A
// topic behind a pipeline refuses them, since a module sees keys and headers as text.
TEST_F(KafkaTest, BinaryKeysAndHeadersCrossBothProtocolsByteForByte) {
  start_with_kafka();
  upload("etl_tagger", "tagger");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "bin", "stages": [
      {"priority": 0, "modules": [{"module_id": "tagger",
        "topic_filters": [{"filter_type": "Exact", "pattern": "piped"}],
        "instance_config": {"custom_config": {"append": "+"}}}]}]})",
        201);
  auto run = python(R"(
from confluent_kafka import Producer, Consumer, TopicPartition
p = Producer({'bootstrap.servers': BOOTSTRAP})
errors = {}
def report(topic):
    return lambda e, m: errors.setdefault(topic, []).append(e.name() if e else None)
p.produce('raw', key=b'\xff\x00\x01', value=b'\x80v', headers=[('h', b'\xfe\xfd'), ('t', b'text')], on_delivery=report('raw'))
p.produce('piped', key=b'\xff', value=b'v', on_delivery=report('piped'))
p.produce('piped', key=b'ok', value=b'v', headers=[('h', b'\xc3')], on_delivery=report('piped'))
p.flush(30)
print('errors', sorted(errors.items()))
c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'bin', 'enable.auto.commit': False})
c.assign([TopicPartition('raw', 0, 0)])
m = c.poll(10)
print('kafka', m.key() == b'\xff\x00\x01', m.value() == b'\x80v', m.headers() == [('h', b'\xfe\xfd'), ('t', b'text')])
c.close()
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("errors [('piped', ['INVALID_RECORD', 'INVALID_RECORD']), ('raw', [None])]"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("kafka True True True"), std::string::npos) << run.out;
  // HTTP reads it in valid JSON, base64 where the bytes are not text.
  json::array messages = consume("raw");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].at("key_base64").as_string(), "/wAB");
  EXPECT_EQ(messages[0].at("value_base64").as_string(), "gHY=");
  EXPECT_EQ(messages[0].at("headers").at("t").as_string(), "text");
  EXPECT_EQ(messages[0].at("headers_base64").at("h").as_string(), "/v0=");
  EXPECT_FALSE(messages[0].as_object().contains("key"));
  EXPECT_EQ(data("GET", "/api/v1/topics/piped").at("partition_details").at(0).at("high_watermark").as_int64(), 0);
  // And HTTP produces binary keys and headers the same way, read back by Kafka byte for byte.
  data("POST", "/api/v1/topics/raw/messages",
       R"({"key_base64": "AP4=", "value": "x", "headers_base64": {"bin": "AQI="}})");
  auto again = python(R"(
from confluent_kafka import Consumer, TopicPartition
c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'bin', 'enable.auto.commit': False})
c.assign([TopicPartition('raw', 0, 1)])
m = c.poll(10)
print('from http', m.key() == b'\x00\xfe', m.headers() == [('bin', b'\x01\x02')])
c.close()
)");
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("from http True True"), std::string::npos) << again.out;
  // Over HTTP into the pipeline's topic: refused, naming why.
  json::value refused = data("POST", "/api/v1/topics/piped/messages", R"({"key_base64": "/w==", "value": "x"})", 400);
  EXPECT_NE(json::serialize(refused).find("the key is not UTF-8"), std::string::npos) << refused;
}

// One group, two protocols: the HTTP API's `group=` and a Kafka consumer group share committed
// offsets; while Kafka members hold the group, HTTP may read with it but not commit.
TEST_F(KafkaTest, HttpAndKafkaConsumersShareAGroupsCommittedOffsets) {
  start_with_kafka();
  data("POST", "/api/v1/topics", R"({"name":"shared","partitions":1})", 201);
  data("POST", "/api/v1/topics/shared/messages",
       R"([{"value":"m0"},{"value":"m1"},{"value":"m2"},{"value":"m3"},{"value":"m4"}])");
  json::value first = data("GET", "/api/v1/topics/shared/messages?group=shared&max_messages=2&commit=true");
  ASSERT_EQ(first.at("group").at("committed_offset").as_int64(), 2);
  auto run = python("ADMIN = '" + broker_->admin_url() + "'\nDATA = '" + broker_->data_url() + "'\n" + R"(
import json, time, urllib.request, urllib.error
from confluent_kafka import Consumer
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'shared', 'client.id': 'py-member',
              'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.subscribe(['shared'])
got, deadline = [], time.time() + 30
while len(got) < 3 and time.time() < deadline:
    m = c.poll(0.5)
    if m is not None and not m.error():
        got.append(m.value().decode())
        c.commit(message=m, asynchronous=False)
print('kafka read', got)
status, group = get(ADMIN + '/api/v1/groups/shared')
member = group['members'][0]
print('described', group['state'], len(group['members']), member['client_id'], member.get('assignment'),
      member['client_host'].endswith('127.0.0.1'), group['offsets'][0]['committed_offset'], group['lag'])
status, reply = get(DATA + '/api/v1/topics/shared/messages?group=shared&commit=true')
print('http commit while a member', status, reply['error']['code'])
c.close()
status, reply = get(DATA + '/api/v1/topics/shared/messages?group=shared&commit=true')
print('http after', status, [m['value'] for m in reply['messages']], reply['group']['committed_offset'])
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  // Kafka resumed where HTTP committed.
  EXPECT_NE(run.out.find("kafka read ['m2', 'm3', 'm4']"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("described Stable 1 py-member [{'topic': 'shared', 'partitions': [0]}] True 5 0"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("http commit while a member 409 group_has_members"), std::string::npos) << run.out;
  // HTTP resumed where Kafka committed.
  EXPECT_NE(run.out.find("http after 200 [] 5"), std::string::npos) << run.out;
  data("POST", "/api/v1/topics/shared/messages", R"([{"value":"m5"}])");
  json::value last = data("GET", "/api/v1/topics/shared/messages?group=shared&commit=true");
  ASSERT_EQ(last.at("messages").as_array().size(), 1u);
  EXPECT_EQ(last.at("messages").at(0).at("value").as_string(), "m5");
}

// Transactions are not offered: a transactional producer fails at once with a fatal error,
// never retrying forever.
TEST_F(KafkaTest, ATransactionalProducerFailsAtOnce) {
  start_with_kafka();
  auto run = python(R"(
import time
from confluent_kafka import Producer, KafkaException
start = time.time()
try:
    Producer({'bootstrap.servers': BOOTSTRAP, 'transactional.id': 'tx-1'}).init_transactions(30)
    print('transactions started')
except KafkaException as e:
    print('failed fatal', e.args[0].fatal(), 'in time', time.time() - start < 20)
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("failed fatal True in time True"), std::string::npos) << run.out << run.err;
}

TEST_F(KafkaTest, KafkaPythonProducesAndConsumes) {
  start_with_kafka();
  auto run = python(R"(
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks='all', compression_type='gzip', api_version_auto_timeout_ms=10000)
futures = [p.send('py', key=b'k%d' % i, value=b'v%d' % i, headers=[('h', b'%d' % i)]) for i in range(50)]
offsets = [f.get(timeout=30).offset for f in futures]
print('offsets', offsets == list(range(50)))
p.close()
c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, consumer_timeout_ms=5000, enable_auto_commit=False)
c.assign([TopicPartition('py', 0)])
c.seek_to_beginning()
got = [(m.key, m.value, m.headers, m.offset) for m in c]
print('consumed', len(got), got[7] == (b'k7', b'v7', [('h', b'7')], 7))
print('end', c.end_offsets([TopicPartition('py', 0)])[TopicPartition('py', 0)])
c.close()
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("offsets True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("consumed 50 True"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("end 50"), std::string::npos) << run.out;
}

// KafkaJS: an independent implementation in JavaScript (admin, producer, a consumer group).
TEST_F(KafkaTest, KafkaJsAdminProducerAndConsumerGroup) {
  start_with_kafka();
  auto run = node(R"(
const kafka = new Kafka({ clientId: 'wasmq-test', brokers: [BOOTSTRAP], logLevel: logLevel.ERROR });
(async () => {
  const admin = kafka.admin();
  await admin.connect();
  console.log('created', await admin.createTopics({ topics: [{ topic: 'js', numPartitions: 3 }] }));
  console.log('topics', (await admin.listTopics()).includes('js'));
  const described = await admin.describeConfigs({ includeSynonyms: false,
    resources: [{ type: 2, name: 'js', configNames: ['cleanup.policy'] }] });
  console.log('config', described.resources[0].configEntries.map(e => e.configName + '=' + e.configValue).join());
  const producer = kafka.producer();
  await producer.connect();
  const sent = await producer.send({ topic: 'js', messages: Array.from({ length: 90 }, (_, i) => (
    { key: 'k' + i, value: 'v' + i, headers: { n: String(i) } })) });
  console.log('acks', sent.length > 0 && sent.every(r => r.errorCode === 0));
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'js-group' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'js', fromBeginning: true });
  const seen = new Map();
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 30000);
    consumer.run({ eachMessage: async ({ partition, message }) => {
      seen.set(message.value.toString(), message.headers.n.toString());
      if (seen.size === 90) { clearTimeout(timer); resolve(); }
    } });
  });
  console.log('consumed', seen.size, [...seen].every(([v, n]) => v === 'v' + n));
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: 'js-group', topics: ['js'] });
  console.log('committed', offsets[0].partitions.reduce((sum, p) => sum + Number(p.offset), 0));
  await admin.disconnect();
})().catch((e) => { console.log('failed', e.message); process.exit(1); });
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("created true"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("topics true"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("config cleanup.policy=delete"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("acks true"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("consumed 90 true"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("committed 90"), std::string::npos) << run.out;
}

// Bytes that are not Kafka close their own connection and nothing else.
TEST_F(KafkaTest, HostileBytesCloseOneConnectionAndTheBrokerServesTheOthers) {
  start_with_kafka();
  ASSERT_EQ(kcat("-P -t steady", "before\n").exit_code, 0);
  auto run = python(R"(
import socket, struct
host, port = BOOTSTRAP.split(':')
def closed_after(payload, wait=5):
    s = socket.create_connection((host, int(port)))
    s.settimeout(wait)
    s.sendall(payload)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return 'closed'
    except socket.timeout:
        return 'open'
    except ConnectionResetError:
        return 'closed'
    finally:
        s.close()
# A client that stays connected meanwhile, then asks for ApiVersions.
quiet = socket.create_connection((host, int(port)))
cases = {
  'garbage': b'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
  'huge length': struct.pack('>i', 2000000000) + b'x' * 100,
  'negative length': struct.pack('>i', -5) + b'xxxx',
  'tiny length': struct.pack('>i', 3) + b'abc',
  'unknown api key': struct.pack('>ihhih', 10, 999, 0, 1, -1),
  'truncated body': struct.pack('>ihhih', 40, 3, 4, 1, -1) + struct.pack('>i', 5),
  # Metadata v1 asking for every topic, and two bytes more inside the frame.
  'bytes left over': struct.pack('>ihhihi', 16, 3, 1, 1, -1, -1) + b'\x00\x00',
}
for name, payload in cases.items():
    # A truncated frame is closed only when the client gives up; the rest at once.
    if name == 'truncated body':
        s = socket.create_connection((host, int(port)))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        print(name, 'closed' if s.recv(10) == b'' else 'answered')
        s.close()
    else:
        print(name, closed_after(payload))
quiet.sendall(struct.pack('>ihhih', 10, 18, 0, 9, -1))
size = struct.unpack('>i', quiet.recv(4))[0]
body = b''
while len(body) < size:
    body += quiet.recv(size - len(body))
print('quiet client answered', struct.unpack('>ih', body[:6]) == (9, 0))
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  for (const char* name : {"garbage", "huge length", "negative length", "tiny length",
                           "unknown api key", "truncated body", "bytes left over"}) {
    EXPECT_NE(run.out.find(std::string(name) + " closed"), std::string::npos) << name << "\n" << run.out;
  }
  EXPECT_NE(run.out.find("quiet client answered True"), std::string::npos) << run.out;
  // The broker is up and serves both protocols.
  ASSERT_EQ(kcat("-P -t steady", "after\n").exit_code, 0);
  auto consumed = kcat("-C -t steady -o beginning -e -f '%s\\n'");
  EXPECT_EQ(consumed.out, "before\nafter\n") << consumed.err;
  data("GET", "/health");
  // Every refused frame was counted; the requests served, per API.
  json::value metrics = admin("GET", "/api/v1/metrics");
  ASSERT_TRUE(metrics.is_object());
  const json::object& kafka = metrics.at("kafka").as_object();
  EXPECT_EQ(kafka.at("request_errors_total").to_number<double>(), 7) << kafka;
  EXPECT_GE(kafka.at("requests_total").at("Produce").to_number<double>(), 2) << kafka;
  EXPECT_GE(kafka.at("requests_total").at("Metadata").to_number<double>(), 1) << kafka;
  EXPECT_GT(kafka.at("bytes_in_total").to_number<double>(), 0) << kafka;
  auto prometheus = admin_->request("GET", "/metrics", "");
  ASSERT_TRUE(prometheus.is_ok());
  EXPECT_NE(prometheus->body.find("wasmq_kafka_request_errors_total 7\n"), std::string::npos);
  EXPECT_NE(prometheus->body.find("wasmq_kafka_requests_total{api=\"Produce\"}"), std::string::npos);
}

// Pipelines apply to what Kafka clients produce exactly as to HTTP producers: transformed,
// filtered, dead-lettered.
TEST_F(KafkaTest, PipelinesApplyToWhatKafkaClientsProduce) {
  start_with_kafka();
  upload("etl_tagger", "tagger");
  upload("etl_faulty", "faulty");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "kafka-in", "error_handling": "SendToDeadLetter",
    "stages": [
      {"priority": 0, "modules": [{"module_id": "tagger",
        "topic_filters": [{"filter_type": "Exact", "pattern": "kin"}],
        "instance_config": {"custom_config": {"filter_word": "drop", "header": "tagged", "append": "!"}}}]},
      {"priority": 1, "modules": [{"module_id": "faulty",
        "topic_filters": [{"filter_type": "Exact", "pattern": "kin"}],
        "instance_config": {"custom_config": {"error_word": "boom"}}}]}]})",
        201);
  ASSERT_EQ(kcat("-P -t kin -K:", "a:keep one\nb:drop this\nc:boom\nd:keep two\n").exit_code, 0);
  auto consumed = kcat("-C -t kin -o beginning -e -f '%k|%s\\n'");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_EQ(consumed.out, "a|keep one!\nd|keep two!\n");
  auto headers = kcat("-C -t kin -o beginning -e -f '%h\\n'");
  EXPECT_EQ(std::count(headers.out.begin(), headers.out.end(), '\n'), 2) << headers.out;
  EXPECT_EQ(headers.out.find("tagged=1"), 0u) << headers.out;
  auto dead = kcat("-C -t dlq.etl.kin -o beginning -e -f '%k|%s\\n'");
  ASSERT_EQ(dead.exit_code, 0) << dead.err;
  EXPECT_NE(dead.out.find("c|boom"), std::string::npos) << dead.out;
  EXPECT_EQ(std::count(dead.out.begin(), dead.out.end(), '\n'), 1) << dead.out;
  // The same over HTTP gives the same outcome.
  json::value produced = data("POST", "/api/v1/topics/kin/messages", R"({"key":"e","value":"keep three"})");
  EXPECT_EQ(produced.at("results").at(0).at("status").as_string(), "stored");
  EXPECT_EQ(consume("kin").back().at("value").as_string(), "keep three!");
}

TEST_F(KafkaTest, TheListenerIsOffUnlessConfigured) {
  start();
  EXPECT_TRUE(broker_->kafka_address().empty());
}

// With a tokens file the listener requires SASL/PLAIN (username = the token's name, password =
// the token) and grants what the token's role grants on HTTP; refusals are audited.
TEST_F(KafkaTest, SaslPlainAuthenticatesTokensAndGrantsTheirRolesRights) {
  const fs::path tokens = secrets() / "tokens";
  const fs::path audit = secrets() / "audit.jsonl";
  std::ofstream(tokens) << "admin alice admin-token-0123456789abcdef\n"
                           "producer app producer-token-0123456789ab\n"
                           "consumer reader consumer-token-0123456789ab\n";
  start_with_kafka("[security]\ntokens_file = \"" + tokens.string() + "\"\naudit_log = \"" +
                   audit.string() + "\"\n");
  auto run = python(R"(
import time
from confluent_kafka import Producer, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
def conf(user=None, password=None, **more):
    c = {'bootstrap.servers': BOOTSTRAP}
    if user:
        c.update({'security.protocol': 'SASL_PLAINTEXT', 'sasl.mechanisms': 'PLAIN',
                  'sasl.username': user, 'sasl.password': password})
    c.update(more)
    return c
def produce(c, topic, n):
    p = Producer(dict(c, **{'message.timeout.ms': 4000}))
    errors = []
    for i in range(n):
        p.produce(topic, value='v%d' % i, on_delivery=lambda e, m: errors.append(e))
    p.flush(15)
    return sum(1 for e in errors if e is None), [str(e.name()) for e in errors if e is not None][:1]
print('anonymous', produce(conf(), 'secret', 3))
print('wrong token', produce(conf('app', 'producer-token-wrong-000000'), 'secret', 3))
print('wrong name', produce(conf('alice', 'producer-token-0123456789ab'), 'secret', 3))
app = conf('app', 'producer-token-0123456789ab')
print('producer', produce(app, 'secret', 10))
app_admin = AdminClient(app)
try:
    app_admin.delete_topics(['secret'])['secret'].result(10)
    print('producer deleted')
except KafkaException as e:
    print('producer delete', e.args[0].name())
reader = conf('reader', 'consumer-token-0123456789ab', **{'group.id': 'readers', 'auto.offset.reset': 'earliest'})
print('consumer produce', produce(reader, 'secret', 1))
c = Consumer(reader)
c.subscribe(['secret'])
got, deadline = 0, time.time() + 20
while got < 10 and time.time() < deadline:
    m = c.poll(0.5)
    if m is not None and not m.error():
        got += 1
c.commit(asynchronous=False)
c.close()
print('consumer read', got)
admin = AdminClient(conf('alice', 'admin-token-0123456789abcdef'))
admin.delete_topics(['secret'])['secret'].result(10)
print('admin deleted', 'secret' not in admin.list_topics(timeout=10).topics)
)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  // Without credentials or with wrong ones nothing is stored.
  EXPECT_NE(run.out.find("anonymous (0, "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("wrong token (0, "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("wrong name (0, "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("producer (10, [])"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("producer delete TOPIC_AUTHORIZATION_FAILED"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("consumer produce (0, ['TOPIC_AUTHORIZATION_FAILED'])"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("consumer read 10"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("admin deleted True"), std::string::npos) << run.out;

  // The refusals and the deletion are in the audit log, with who and why.
  std::ifstream in(audit);
  std::vector<json::object> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line).as_object());
  auto has = [&](const std::string& who, const std::string& api, const std::string& result,
                 const std::string& resource, const std::string& error_part) {
    for (const auto& l : lines) {
      if (l.at("protocol") == "kafka" && l.at("who") == who.c_str() && l.at("api") == api.c_str() &&
          l.at("result") == result.c_str() &&
          (resource.empty() || (l.contains("resource") && l.at("resource") == resource.c_str())) &&
          (error_part.empty() ||
           std::string(l.at("error").as_string()).find(error_part) != std::string::npos)) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has("anonymous", "Metadata", "refused", "", "before SASL authentication")) << lines.size();
  EXPECT_TRUE(has("anonymous", "SaslAuthenticate", "refused", "user app", "wrong token"));
  EXPECT_TRUE(has("anonymous", "SaslAuthenticate", "refused", "user alice", "wrong token"));
  EXPECT_TRUE(has("app", "DeleteTopics", "refused", "topic secret", "lacks the right delete_topics"));
  EXPECT_TRUE(has("reader", "Produce", "refused", "topic secret", "lacks the right produce"));
  EXPECT_TRUE(has("alice", "DeleteTopics", "ok", "topic secret", ""));
  for (const auto& l : lines) {
    EXPECT_EQ(json::serialize(l).find("token-0123"), std::string::npos) << "a token in the audit log";
  }
}

// Other clients speak SASL differently: kcat (librdkafka), kafka-python, KafkaJS.
TEST_F(KafkaTest, SaslPlainWorksWithKcatKafkaPythonAndKafkaJs) {
  const fs::path tokens = secrets() / "tokens";
  std::ofstream(tokens) << "admin alice admin-token-0123456789abcdef\n";
  start_with_kafka("[security]\ntokens_file = \"" + tokens.string() + "\"\n");
  const std::string sasl =
      "-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN -X sasl.username=alice "
      "-X sasl.password=admin-token-0123456789abcdef ";
  ASSERT_EQ(kcat(sasl + "-P -t k", "one\ntwo\n").exit_code, 0);
  auto consumed = kcat(sasl + "-C -t k -o beginning -e");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_EQ(consumed.out, "one\ntwo\n");
  EXPECT_NE(kcat("-m 3 -L").exit_code, 0);  // no credentials: no metadata

  auto py = python(R"(
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
auth = dict(security_protocol='SASL_PLAINTEXT', sasl_mechanism='PLAIN', sasl_plain_username='alice',
            sasl_plain_password='admin-token-0123456789abcdef')
p = KafkaProducer(bootstrap_servers=BOOTSTRAP, **auth)
print('offset', p.send('k', b'three').get(timeout=30).offset)
p.close()
c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, consumer_timeout_ms=5000, **auth)
c.assign([TopicPartition('k', 0)])
c.seek_to_beginning()
print('values', [m.value for m in c])
try:
    KafkaProducer(bootstrap_servers=BOOTSTRAP, **dict(auth, sasl_plain_password='wrong-token-000000000000'))
    print('wrong token accepted')
except Exception as e:
    print('wrong token refused', type(e).__name__)
)");
  ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("offset 2"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("values [b'one', b'two', b'three']"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("wrong token refused"), std::string::npos) << py.out;

  auto js = node(R"(
const sasl = { mechanism: 'plain', username: 'alice', password: 'admin-token-0123456789abcdef' };
(async () => {
  const kafka = new Kafka({ brokers: [BOOTSTRAP], sasl, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: 'k', messages: [{ value: 'four' }] });
  await producer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets('k');
  console.log('high', offsets[0].high);
  await admin.disconnect();
  const wrong = new Kafka({ brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING, retry: { retries: 0 },
                            sasl: { mechanism: 'plain', username: 'alice', password: 'nope-nope-nope-nope' } });
  try { await wrong.producer().connect(); console.log('wrong accepted'); }
  catch (e) { console.log('wrong refused', e.name); }
  process.exit(0);
})().catch((e) => { console.log('failed', e.message); process.exit(1); });
)");
  ASSERT_EQ(js.exit_code, 0) << js.out << js.err;
  EXPECT_NE(js.out.find("high 4"), std::string::npos) << js.out;
  EXPECT_NE(js.out.find("wrong refused KafkaJSSASLAuthenticationError"), std::string::npos) << js.out;
}

// With security.tls_cert and tls_key the listener speaks TLS (SSL, and SASL_SSL with tokens).
TEST_F(KafkaTest, TlsServesSslAndSaslSslClientsAndRefusesPlainOnes) {
  const fs::path cert = secrets() / "broker.crt";
  const fs::path key = secrets() / "broker.key";
  const std::string make_cert =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      quote(key.string()) + " -out " + quote(cert.string()) + " 2>/dev/null";
  ASSERT_EQ(std::system(make_cert.c_str()), 0);
  const std::string tls = "tls_cert = \"" + cert.string() + "\"\ntls_key = \"" + key.string() + "\"\n";
  start_with_kafka("[security]\n" + tls);
  EXPECT_EQ(broker_->kafka_protocol(), "SSL");
  const std::string ssl = "-X security.protocol=SSL -X ssl.ca.location=" + quote(cert.string()) + " ";
  ASSERT_EQ(kcat(ssl + "-P -t secure -K:", "k1:over tls\n").exit_code, 0);
  auto consumed = kcat(ssl + "-C -t secure -o beginning -e -f '%k|%s\\n'");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_EQ(consumed.out, "k1|over tls\n");
  // A plaintext client gets nothing; the handshake failure is counted.
  EXPECT_NE(kcat("-m 3 -L").exit_code, 0);
  auto py = python("CA = '" + cert.string() + "'\n" + R"(
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
p = KafkaProducer(bootstrap_servers=BOOTSTRAP, security_protocol='SSL', ssl_cafile=CA)
print('offset', p.send('secure', b'from kafka-python').get(timeout=30).offset)
p.close()
)");
  ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("offset 1"), std::string::npos) << py.out;
  auto js = node("const CA = '" + cert.string() + "';\n" + R"(
const fs = require('fs');
(async () => {
  const kafka = new Kafka({ brokers: [BOOTSTRAP], ssl: { ca: [fs.readFileSync(CA)] }, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const sent = await producer.send({ topic: 'secure', messages: [{ value: 'from kafkajs' }] });
  console.log('offset', sent[0].baseOffset);
  await producer.disconnect();
})().catch((e) => { console.log('failed', e.message); process.exit(1); });
)");
  ASSERT_EQ(js.exit_code, 0) << js.out << js.err;
  EXPECT_NE(js.out.find("offset 2"), std::string::npos) << js.out;
  http::HttpClient over_tls(broker_->admin_url(),
                            http::ClientOptions{.timeout_ms = 10'000, .token = {}, .ca_file = cert.string()});
  auto metrics = over_tls.request("GET", "/api/v1/metrics", "");
  ASSERT_TRUE(metrics.is_ok()) << metrics.status().message();
  EXPECT_GE(json::parse(metrics->body).at("kafka").at("request_errors_total").to_number<double>(), 1);

  // Tokens and TLS: SASL_SSL (a new broker, on fresh data).
  broker_->stop();
  broker_.reset();
  const fs::path tokens = secrets() / "tokens";
  std::ofstream(tokens) << "producer app producer-token-0123456789ab\n";
  start_with_kafka("[security]\n" + tls + "tokens_file = \"" + tokens.string() + "\"\n");
  EXPECT_EQ(broker_->kafka_protocol(), "SASL_SSL");
  auto sasl_ssl = python("CA = '" + cert.string() + "'\n" + R"(
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': BOOTSTRAP, 'security.protocol': 'SASL_SSL', 'ssl.ca.location': CA,
              'sasl.mechanisms': 'PLAIN', 'sasl.username': 'app', 'sasl.password': 'producer-token-0123456789ab'})
reports = []
p.produce('secure', value='over sasl_ssl', on_delivery=lambda e, m: reports.append((e, m.offset())))
p.flush(30)
print('delivered', reports)
)");
  ASSERT_EQ(sasl_ssl.exit_code, 0) << sasl_ssl.out << sasl_ssl.err;
  EXPECT_NE(sasl_ssl.out.find("delivered [(None, 0)]"), std::string::npos) << sasl_ssl.out;
}

}  // namespace
}  // namespace wasmq
