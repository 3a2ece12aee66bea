// sdk/c/wasmq_json.h, the C SDK's JSON field reader and writer: natively (every prefix of the
// inputs in a buffer of exactly its size, so the sanitizer builds catch any read past the end),
// and inside the real runtime through tests/modules/json_fields.c and `wasmq transform run`
// (there every prefix sits at the very end of the linear memory, so a read past it traps).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "../sdk/c/wasmq_json.h"
#include "command.h"
#include "module_files.h"

namespace wasmq {
namespace {

namespace json = boost::json;
using testing::CommandRun;

wasmq_bytes bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), static_cast<uint32_t>(s.size())};
}

// get_string into a buffer of the raw length; "<status text>" when it fails.
std::string get_string(const std::string& doc, const char* name) {
  std::vector<uint8_t> out(doc.size() + 1);
  uint32_t len = 0;
  int status =
      wasmq_json_get_string(bytes(doc), name, out.data(), static_cast<uint32_t>(out.size()), &len);
  if (status != WASMQ_JSON_OK) return std::string("<") + wasmq_json_status_text(status) + ">";
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

// A writing call: first the size, then into a buffer of exactly that size.
template <typename Write>
std::string edited(Write write, int* status_out = nullptr) {
  uint32_t needed = 0;
  int status = write(nullptr, 0, &needed);
  if (status_out) *status_out = status;
  if (status == WASMQ_JSON_OK && needed == 0) return "";
  if (status != WASMQ_JSON_TOO_SMALL)
    return std::string("<") + wasmq_json_status_text(status) + ">";
  std::vector<uint8_t> out(needed);
  uint32_t len = 0;
  status = write(out.data(), needed, &len);
  if (status_out) *status_out = status;
  EXPECT_EQ(len, needed);
  if (status != WASMQ_JSON_OK) return std::string("<") + wasmq_json_status_text(status) + ">";
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

std::string set_string(const std::string& doc, const char* name, const std::string& value) {
  return edited([&](uint8_t* out, uint32_t cap, uint32_t* len) {
    return wasmq_json_set_string(bytes(doc), name, bytes(value), out, cap, len);
  });
}
std::string set_number(const std::string& doc, const char* name, double value) {
  return edited([&](uint8_t* out, uint32_t cap, uint32_t* len) {
    return wasmq_json_set_number(bytes(doc), name, value, out, cap, len);
  });
}
std::string set_raw(const std::string& doc, const char* name, const std::string& raw) {
  return edited([&](uint8_t* out, uint32_t cap, uint32_t* len) {
    return wasmq_json_set_raw(bytes(doc), name, bytes(raw), out, cap, len);
  });
}
std::string remove_field(const std::string& doc, const char* name) {
  return edited([&](uint8_t* out, uint32_t cap, uint32_t* len) {
    return wasmq_json_remove(bytes(doc), name, out, cap, len);
  });
}

// Every function on `doc` (which must be in memory of exactly its size): their statuses.
std::vector<int> every_status(wasmq_bytes doc, const char* name) {
  uint8_t text[64];
  uint32_t len = 0;
  double number = 0;
  bool flag = false;
  wasmq_json_field field;
  uint8_t out[256];
  return {wasmq_json_find(doc, name, &field),
          wasmq_json_get_string(doc, name, text, sizeof text, &len),
          wasmq_json_get_number(doc, name, &number),
          wasmq_json_get_bool(doc, name, &flag),
          wasmq_json_set_string(doc, name, bytes("v"), out, sizeof out, &len),
          wasmq_json_set_number(doc, name, 1.5, out, sizeof out, &len),
          wasmq_json_set_raw(doc, name, bytes("[1]"), out, sizeof out, &len),
          wasmq_json_remove(doc, name, out, sizeof out, &len)};
}

const std::vector<std::string> kValidObjects = {
    R"({})",
    R"({"celsius": 21.5, "sensor": "s1"})",
    R"({"a\"b": "x\\y\n\u00e9\ud83d\ude00", "n": -1.25e-3, "t": true, "f": false, "z": null})",
    R"({"outer": {"celsius": 1, "list": [1, {"y": "}]"}, []]}, "celsius": 2})",
    "{\"caf\xc3\xa9\": \"\xe2\x82\xac\", \"celsius\": 0}",
};

TEST(WasmqJson, ReadsStringsWithEveryEscapeDecoded) {
  const std::string doc =
      R"({"a": "q\"b\\s\/n\nt\tr\rb\bf\f", "u": "\u00e9\u20ac\ud83d\ude00", "e": ""})";
  EXPECT_EQ(get_string(doc, "a"), "q\"b\\s/n\nt\tr\rb\bf\f");
  EXPECT_EQ(get_string(doc, "u"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(get_string(doc, "e"), "");
  EXPECT_EQ(get_string(R"({"nul": "a\u0000b"})", "nul"), std::string("a\0b", 3));
  // A buffer too small: the size needed, nothing past the capacity written.
  uint8_t small[4] = {0, 0, 0, 0x7F};
  uint32_t len = 0;
  EXPECT_EQ(wasmq_json_get_string(bytes(doc), "u", small, 3, &len), WASMQ_JSON_TOO_SMALL);
  EXPECT_EQ(len, 9u);
  EXPECT_EQ(small[3], 0x7F);
}

TEST(WasmqJson, ComparesNamesAfterDecodingAndRefusesDuplicates) {
  double value = 0;
  EXPECT_EQ(wasmq_json_get_number(bytes(R"({"\u0063elsius": 5})"), "celsius", &value),
            WASMQ_JSON_OK);
  EXPECT_EQ(value, 5);
  EXPECT_EQ(wasmq_json_get_number(bytes(R"({"celsius2": 5})"), "celsius", &value),
            WASMQ_JSON_NOT_FOUND);
  EXPECT_EQ(wasmq_json_get_number(bytes(R"({"celsiu": 5})"), "celsius", &value),
            WASMQ_JSON_NOT_FOUND);
  EXPECT_EQ(wasmq_json_get_number(bytes(R"({"a": 1, "a": 2})"), "a", &value), WASMQ_JSON_DUPLICATE);
  EXPECT_EQ(wasmq_json_get_number(bytes(R"({"a": 1, "\u0061": 2})"), "a", &value),
            WASMQ_JSON_DUPLICATE);
}

TEST(WasmqJson, ReadsNumbersBoolsAndTypes) {
  const std::string doc =
      R"({"n": -1.25e-3, "i": 42, "z": 0, "t": true, "f": false, "s": "1", "o": null})";
  double n = 0;
  EXPECT_EQ(wasmq_json_get_number(bytes(doc), "n", &n), WASMQ_JSON_OK);
  EXPECT_DOUBLE_EQ(n, -1.25e-3);
  EXPECT_EQ(wasmq_json_get_number(bytes(doc), "i", &n), WASMQ_JSON_OK);
  EXPECT_EQ(n, 42);
  EXPECT_EQ(wasmq_json_get_number(bytes(doc), "s", &n), WASMQ_JSON_WRONG_TYPE);
  bool b = false;
  EXPECT_EQ(wasmq_json_get_bool(bytes(doc), "t", &b), WASMQ_JSON_OK);
  EXPECT_TRUE(b);
  EXPECT_EQ(wasmq_json_get_bool(bytes(doc), "f", &b), WASMQ_JSON_OK);
  EXPECT_FALSE(b);
  EXPECT_EQ(wasmq_json_get_bool(bytes(doc), "o", &b), WASMQ_JSON_WRONG_TYPE);
  EXPECT_EQ(get_string(doc, "i"), "<the field has another type>");
  wasmq_json_field field;
  ASSERT_EQ(wasmq_json_find(bytes(doc), "o", &field), WASMQ_JSON_OK);
  EXPECT_EQ(field.type, WASMQ_JSON_NULL);
  const std::string long_number = "{\"n\": 1" + std::string(200, '0') + "}";
  EXPECT_EQ(wasmq_json_get_number(bytes(long_number), "n", &n), WASMQ_JSON_UNSUPPORTED);
}

TEST(WasmqJson, ReadsTopLevelFieldsOnlyAndNestedObjectsByTheirText) {
  const std::string doc = kValidObjects[3];
  double celsius = 0;
  ASSERT_EQ(wasmq_json_get_number(bytes(doc), "celsius", &celsius), WASMQ_JSON_OK);
  EXPECT_EQ(celsius, 2);
  EXPECT_EQ(get_string(doc, "y"), "<no such field>");
  wasmq_json_field outer;
  ASSERT_EQ(wasmq_json_find(bytes(doc), "outer", &outer), WASMQ_JSON_OK);
  EXPECT_EQ(outer.type, WASMQ_JSON_OBJECT);
  ASSERT_EQ(wasmq_json_get_number(outer.raw, "celsius", &celsius), WASMQ_JSON_OK);
  EXPECT_EQ(celsius, 1);
  wasmq_json_field list;
  ASSERT_EQ(wasmq_json_find(outer.raw, "list", &list), WASMQ_JSON_OK);
  EXPECT_EQ(list.type, WASMQ_JSON_ARRAY);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(list.raw.data), list.raw.len),
            R"([1, {"y": "}]"}, []])");
}

TEST(WasmqJson, RefusesMalformedInputWithEveryFunction) {
  for (const std::string& doc : std::vector<std::string>{"",
                                                         " ",
                                                         "{",
                                                         "}",
                                                         "[1]",
                                                         "\"a\"",
                                                         "1",
                                                         "null",
                                                         R"({"a")",
                                                         R"({"a":})",
                                                         R"({"a":1,})",
                                                         R"({,"a":1})",
                                                         R"({"a":1}x)",
                                                         R"({"a":1}{})",
                                                         R"({"a":01})",
                                                         R"({"a":1.})",
                                                         R"({"a":.5})",
                                                         R"({"a":-})",
                                                         R"({"a":1e})",
                                                         R"({"a":+1})",
                                                         R"({"a":"\x"})",
                                                         R"({"a":"\u12"})",
                                                         R"({"a":"\ud800"})",
                                                         R"({"a":"\udc00"})",
                                                         R"({"a":"\ud800\u0041"})",
                                                         R"({'a':1})",
                                                         R"({"a":tru})",
                                                         R"({"a":nul})",
                                                         R"({"a":[1,2})",
                                                         R"({"a":{"b":1]})",
                                                         R"({"a":[1,]})",
                                                         R"({"a" 1})",
                                                         R"({a:1})",
                                                         "{\"a\":\"\x01\"}",
                                                         "{\"a\":\"\xff\"}",
                                                         "{\"a\":\"\xc3\"}",
                                                         "{\"a\":\"\xed\xa0\x80\"}",
                                                         "\xef\xbb\xbf{}",
                                                         std::string("{\"a\":1}\0", 8)}) {
    std::vector<uint8_t> exact(doc.begin(), doc.end());
    wasmq_bytes view = {exact.empty() ? reinterpret_cast<const uint8_t*>("") : exact.data(),
                        static_cast<uint32_t>(exact.size())};
    for (int status : every_status(view, "a")) {
      EXPECT_EQ(status, WASMQ_JSON_MALFORMED) << "input: " << doc;
    }
  }
  wasmq_json_field field;
  EXPECT_EQ(wasmq_json_find({nullptr, 0}, "a", &field), WASMQ_JSON_MALFORMED);
}

TEST(WasmqJson, EveryTruncationIsMalformedAndNothingIsReadPastTheEnd) {
  for (const std::string& doc : kValidObjects) {
    for (size_t k = 0; k < doc.size(); ++k) {
      // Exactly k bytes on the heap: a read past them is a heap overflow under ASan.
      std::vector<uint8_t> prefix(doc.begin(), doc.begin() + static_cast<long>(k));
      wasmq_bytes view = {k == 0 ? reinterpret_cast<const uint8_t*>("") : prefix.data(),
                          static_cast<uint32_t>(k)};
      for (const char* name : {"celsius", "n", "outer"}) {
        for (int status : every_status(view, name)) {
          EXPECT_EQ(status, WASMQ_JSON_MALFORMED) << doc << " cut at " << k;
        }
      }
    }
  }
}

TEST(WasmqJson, BoundsNesting) {
  const auto nested = [](int depth) {
    return "{\"a\": " + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  wasmq_json_field field;
  EXPECT_EQ(wasmq_json_find(bytes(nested(WASMQ_JSON_MAX_DEPTH)), "a", &field), WASMQ_JSON_OK);
  EXPECT_EQ(wasmq_json_find(bytes(nested(WASMQ_JSON_MAX_DEPTH + 1)), "a", &field),
            WASMQ_JSON_TOO_DEEP);
  EXPECT_EQ(wasmq_json_find(bytes(nested(100000)), "a", &field), WASMQ_JSON_TOO_DEEP);
}

TEST(WasmqJson, SetsFieldsKeepingTheRestByteForByte) {
  EXPECT_EQ(set_number(R"({"celsius": 21.5, "x": [1]})", "fahrenheit", 21.5 * 9 / 5 + 32),
            R"({"celsius": 21.5, "x": [1],"fahrenheit":70.7})");
  EXPECT_EQ(set_number(R"({ "a" : 1 , "b":2 })", "a", -0.1), R"({ "a" : -0.1 , "b":2 })");
  EXPECT_EQ(set_number("{}", "n", 1e21), R"({"n":1e+21})");
  EXPECT_EQ(set_number("{}", "n", 0.1 + 0.2), R"({"n":0.30000000000000004})");
  EXPECT_EQ(set_string(" { } ", "s", "v"), R"( {"s":"v" } )");
  EXPECT_EQ(set_string(R"({"s": {"deep": [1, 2]}, "t": 1})", "s", "flat"),
            R"({"s": "flat", "t": 1})");
  EXPECT_EQ(set_raw(R"({"a": 1})", "b", R"({"c": [true, null]})"),
            R"({"a": 1,"b":{"c": [true, null]}})");
  // Strings are escaped as JSON needs; the result reads back as what was set.
  const std::string tricky = "q\"b\\n\n\x01\x1f t\xc3\xa9";
  const std::string with_tricky = set_string(R"({"a": 1})", "we\"ird", tricky);
  json::value parsed = json::parse(with_tricky);
  EXPECT_EQ(parsed.as_object().at("we\"ird").as_string(), tricky);
  EXPECT_EQ(get_string(with_tricky, "we\"ird"), tricky);
  // Invalid values: not UTF-8, not finite, not one JSON value.
  EXPECT_EQ(set_string("{}", "s", "\xff"), "<invalid value to write>");
  EXPECT_EQ(set_number("{}", "n", INFINITY), "<invalid value to write>");
  for (const char* raw : {"", "tru", "[1,", "1 2", "{\"a\"}", " 1"}) {
    EXPECT_EQ(set_raw("{}", "r", raw), "<invalid value to write>") << raw;
  }
  EXPECT_EQ(set_string(R"({"a": 1, "a": 2})", "a", "x"), "<the field appears more than once>");
  EXPECT_EQ(set_string(R"({"a": 1)", "a", "x"),
            "<malformed JSON (not one well-formed JSON object)>");
  // The size asked for is exact, and one byte less is too small.
  uint32_t needed = 0;
  const std::string doc = R"({"a": 1})";
  ASSERT_EQ(wasmq_json_set_string(bytes(doc), "b", bytes("xy"), nullptr, 0, &needed),
            WASMQ_JSON_TOO_SMALL);
  std::vector<uint8_t> out(needed - 1);
  uint32_t len = 0;
  EXPECT_EQ(wasmq_json_set_string(bytes(doc), "b", bytes("xy"), out.data(), needed - 1, &len),
            WASMQ_JSON_TOO_SMALL);
  EXPECT_EQ(len, needed);
}

TEST(WasmqJson, RemovesFieldsWithTheirComma) {
  EXPECT_EQ(remove_field(R"({"a": 1, "b": 2, "c": 3})", "a"), R"({"b": 2, "c": 3})");
  EXPECT_EQ(remove_field(R"({"a": 1, "b": 2, "c": 3})", "b"), R"({"a": 1, "c": 3})");
  EXPECT_EQ(remove_field(R"({"a": 1, "b": 2, "c": 3})", "c"), R"({"a": 1, "b": 2})");
  EXPECT_EQ(remove_field(R"({ "a": {"x": [1]} })", "a"), R"({  })");
  EXPECT_EQ(remove_field(R"({"a": 1})", "b"), "<no such field>");
  for (const char* doc : {R"({"a": 1, "b": 2, "c": 3})", R"({"x":{"a":1},"a":[{}],"b":"a"})"}) {
    const std::string removed = remove_field(doc, "a");
    json::object parsed = json::parse(removed).as_object();
    EXPECT_FALSE(parsed.contains("a")) << removed;
  }
}

// The same functions compiled into a module and run by the real runtime.
class JsonFieldsModule : public ::testing::Test {
 protected:
  // One message per case: the value and the op, field and arg headers.
  struct Case {
    std::string value, op, field, arg;
  };
  static std::vector<json::object> run(const std::vector<Case>& cases) {
    std::string input;
    for (const Case& c : cases) {
      json::object headers{{"op", c.op}, {"field", c.field}};
      if (!c.arg.empty()) headers["arg"] = c.arg;
      input += json::serialize(json::object{{"value", c.value}, {"headers", headers}}) + "\n";
    }
    CommandRun r = testing::wasmq(
        {"transform", "run", "--module", testing::module_path("json_fields").string()}, input);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.lines.size(), cases.size()) << r.out << r.err;
    return r.lines;
  }
  static std::string value(const json::object& line) {
    if (line.at("status") != "ok") return "<" + std::string(line.at("error").as_string()) + ">";
    return std::string(line.at("messages").as_array().at(0).at("value").as_string());
  }
};

TEST_F(JsonFieldsModule, ReadsAndEditsFieldsInTheRuntime) {
  const std::string reading =
      R"({"sensor": "s\u00e9\ud83d\ude00\n", "celsius": 21.5, "ok": true, "loc": {"lat": 1.5}})";
  auto lines = run({{reading, "get-string", "sensor", ""},
                    {reading, "get-number", "celsius", ""},
                    {reading, "get-bool", "ok", ""},
                    {reading, "find", "loc", ""},
                    {reading, "set-number", "fahrenheit", "70.7"},
                    {reading, "set-string", "sensor", "t\"1"},
                    {reading, "set-raw", "tags", "[\"a\", 1]"},
                    {reading, "remove", "loc", ""},
                    {reading, "get-number", "sensor", ""},
                    {reading, "get-string", "missing", ""},
                    {R"({"celsius": 21.5, "celsius": 3})", "get-number", "celsius", ""}});
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(value(lines[0]), "s\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(value(lines[1]), "21.5");
  EXPECT_EQ(value(lines[2]), "true");
  EXPECT_EQ(value(lines[3]), R"({"lat": 1.5})");
  EXPECT_EQ(lines[3].at("messages").as_array().at(0).at("headers").at("json-type"), "object");
  EXPECT_EQ(json::parse(value(lines[4])).as_object().at("fahrenheit").as_double(), 70.7);
  EXPECT_EQ(json::parse(value(lines[5])).as_object().at("sensor").as_string(), "t\"1");
  EXPECT_EQ(json::parse(value(lines[6])).as_object().at("tags").as_array().size(), 2u);
  EXPECT_FALSE(json::parse(value(lines[7])).as_object().contains("loc"));
  EXPECT_EQ(value(lines[8]), "<get-number sensor: the field has another type>");
  EXPECT_EQ(value(lines[9]), "<get-string missing: no such field>");
  EXPECT_EQ(value(lines[10]), "<get-number celsius: the field appears more than once>");
}

TEST_F(JsonFieldsModule, MalformedInputIsAnErrorNotATrap) {
  std::vector<Case> cases;
  for (const char* doc :
       {"", "{", R"({"celsius": 21.5)", R"({"celsius": 21.5,})", R"({"a": "\ud800"})",
        R"({"a": [1, 2}, "celsius": 1})", "not json", R"([{"celsius": 1}])"}) {
    for (const char* op : {"get-number", "set-number", "remove"}) {
      cases.push_back({doc, op, "celsius", "1"});
    }
  }
  auto lines = run(cases);
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(value(lines[i]), "<" + cases[i].op +
                                   " celsius: malformed JSON (not one well-formed "
                                   "JSON object)>")
        << "input: " << cases[i].value;
  }
}

TEST_F(JsonFieldsModule, NoReadPastTheEndOfAnyTruncation) {
  std::vector<Case> cases;
  for (const std::string& doc : kValidObjects) cases.push_back({doc, "truncations", "celsius", ""});
  cases.push_back({std::string(R"({"deep": )") + std::string(300, '[') + std::string(300, ']') +
                       R"(, "celsius": 1})",
                   "truncations", "celsius", ""});
  auto lines = run(cases);
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].at("status"), "ok") << "input: " << cases[i].value << ": " << lines[i];
    json::object report = json::parse(value(lines[i])).as_object();
    EXPECT_EQ(report.at("prefixes").as_int64(), static_cast<int64_t>(cases[i].value.size()));
    EXPECT_EQ(report.at("not_malformed").as_int64(), 0) << cases[i].value;
  }
}

}  // namespace
}  // namespace wasmq
