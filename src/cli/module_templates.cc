// The files `wasmq module init` writes (module_author.h, project_files). Placeholders:
// @NAME@ the module name, @TOPIC@ the pipeline's topic, @SDK_C@ and @SDK_RUST@ the SDK
// directories (absolute; @SDK_RUST_TOML@ inside a TOML string), @LANGUAGE@, @SOURCE@ the source
// file, @WASM@ the built module (relative to the project).
#include <string>
#include <string_view>
#include <vector>

#include "cli/module_author.h"

namespace wasmq::cli {
namespace {

constexpr std::string_view kRustSource =
    R"~(//! @NAME@: a wasmq ETL module. It reads JSON readings such as
//! `{"sensor": "s1", "celsius": 21.5}` and shows the three things a module does with a message:
//!
//! - transform: adds `"fahrenheit"` and the header `converted-by: @NAME@`;
//! - filter: drops heartbeats (`"type": "heartbeat"`): no output, nothing stored;
//! - fail: a value that is not a JSON object with a numeric `"celsius"` is an error result
//!   (pipeline.json sends such messages to the dead-letter topic).
//!
//! `wasmq module build` builds it and runs it on sample.ndjson; `cargo test` runs the tests
//! below natively.

use serde_json::{Map, Value};
use wasmq_module::{export_module, Message};

fn process(mut message: Message) -> Result<Option<Message>, String> {
    let mut reading: Map<String, Value> = serde_json::from_slice(&message.value)
        .map_err(|e| format!("value is not a JSON object: {e}"))?;
    if reading.get("type").and_then(Value::as_str) == Some("heartbeat") {
        return Ok(None); // filtered: no output
    }
    let celsius = reading
        .get("celsius")
        .and_then(Value::as_f64)
        .ok_or("field \"celsius\" is missing or not a number")?;
    reading.insert("fahrenheit".to_string(), Value::from(celsius * 9.0 / 5.0 + 32.0));
    message.value = serde_json::to_vec(&reading).map_err(|e| e.to_string())?;
    message.set_header("converted-by", "@NAME@");
    Ok(Some(message))
}

export_module!(process);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_fahrenheit() {
        let out = process(Message::new(r#"{"celsius": 100}"#)).unwrap().unwrap();
        let value: Value = serde_json::from_slice(&out.value).unwrap();
        assert_eq!(value["fahrenheit"], 212.0);
        assert_eq!(out.header("converted-by"), Some("@NAME@"));
    }

    #[test]
    fn drops_heartbeats() {
        assert_eq!(process(Message::new(r#"{"type": "heartbeat"}"#)), Ok(None));
    }

    #[test]
    fn fails_without_celsius() {
        assert!(process(Message::new("{}")).is_err());
        assert!(process(Message::new("not json")).is_err());
    }
}
)~";

constexpr std::string_view kCargoToml = R"~([package]
name = "@NAME@"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]   # cdylib: the .wasm; rlib: `cargo test` natively

[dependencies]
wasmq-module = { path = "@SDK_RUST_TOML@" }
serde_json = "1.0"

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true                      # no debug information or symbol names in the module
)~";

constexpr std::string_view kCargoConfig =
    R"~(# Build offline against the crates Debian packages (apt-get install librust-<crate>-dev).
# Remove this file to use crates.io instead (a rustup toolchain, with network access).
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
)~";

constexpr std::string_view kCSource = R"~(/*
 * @NAME@: a wasmq ETL module. It reads JSON readings such as
 * {"sensor": "s1", "celsius": 21.5} and shows the three things a module does with a message:
 *
 *  - transform: adds "fahrenheit" and the header converted-by: @NAME@;
 *  - filter: drops heartbeats ("type": "heartbeat"): no output, nothing stored;
 *  - fail: a value that is not a JSON object with a numeric "celsius" is an error result
 *    (pipeline.json sends such messages to the dead-letter topic).
 *
 * wasmq_module.h is the module ABI (one function per message); wasmq_json.h reads and edits the
 * top-level fields of a JSON object. `wasmq module build` builds it (make) and runs it on
 * sample.ndjson.
 */
#include "wasmq_json.h"

static int process(const wasmq_message *in, wasmq_output *out) {
  char type[16];
  uint32_t type_len = 0;
  int status = wasmq_json_get_string(in->value, "type", (uint8_t *)type, sizeof type, &type_len);
  if (status == WASMQ_JSON_MALFORMED || status == WASMQ_JSON_TOO_DEEP) {
    wasmq_output_set_error(out, "value is not a JSON object");
    return WASMQ_FAILED;
  }
  if (status == WASMQ_JSON_OK && type_len == 9 && memcmp(type, "heartbeat", 9) == 0) {
    return WASMQ_OK; /* filtered: no output */
  }
  double celsius = 0;
  if (wasmq_json_get_number(in->value, "celsius", &celsius) != WASMQ_JSON_OK) {
    wasmq_output_set_error(out, "field \"celsius\" is missing or not a number");
    return WASMQ_FAILED;
  }
  /* First ask for the size of the edited object, then write it into a buffer of that size. */
  const double fahrenheit = celsius * 9 / 5 + 32;
  uint32_t len = 0;
  wasmq_json_set_number(in->value, "fahrenheit", fahrenheit, NULL, 0, &len);
  uint8_t *edited = (uint8_t *)malloc(len);
  if (edited == NULL ||
      wasmq_json_set_number(in->value, "fahrenheit", fahrenheit, edited, len, &len) != WASMQ_JSON_OK) {
    free(edited);
    wasmq_output_set_error(out, "cannot write the edited value");
    return WASMQ_FAILED;
  }
  wasmq_message changed = *in; /* key, headers and timestamp as they came */
  changed.value.data = edited;
  changed.value.len = len;
  wasmq_header converted_by = {wasmq_cstr("converted-by"), wasmq_cstr("@NAME@")};
  bool added = wasmq_output_add_with_headers(out, &changed, &converted_by, 1); /* copies */
  free(edited);
  return added ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(process);
)~";

constexpr std::string_view kMakefile =
    R"~(# Builds build/@NAME@.wasm, a wasmq module, with clang-14 for wasm32-wasi (a WASI reactor:
# the host calls its exports, there is no main). `wasmq module build` runs `make`, then checks
# the module as an upload is checked and runs it on sample.ndjson.
MODULE := @NAME@
WASMQ_SDK_C := @SDK_C@
CC := clang-14
CFLAGS := --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -I$(WASMQ_SDK_C)
# No debug information or symbol names in the module: a smaller upload.
LDFLAGS := -Wl,--strip-all

build/$(MODULE).wasm: $(MODULE).c $(wildcard $(WASMQ_SDK_C)/*.h)
	@mkdir -p build
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(MODULE).c

clean:
	rm -rf build

.PHONY: clean
)~";

constexpr std::string_view kSample =
    R"~({"key": "sensor-1", "value": "{\"sensor\": \"s1\", \"celsius\": 21.5}"}
{"key": "sensor-2", "value": "{\"sensor\": \"s2\", \"type\": \"heartbeat\"}"}
{"key": "sensor-3", "value": "{\"sensor\": \"s3\", \"celsius\": \"warm\"}"}
)~";

constexpr std::string_view kPipeline = R"~({
  "pipeline_id": "@NAME@",
  "name": "@NAME@ on @TOPIC@",
  "description": "Runs the module @NAME@ on every message produced to @TOPIC@; messages it fails on go to dlq.etl.@TOPIC@",
  "enabled": true,
  "error_handling": "SendToDeadLetter",
  "dead_letter_config": {"topic_prefix": "dlq.etl", "include_error_context": true},
  "stages": [
    {
      "priority": 0,
      "modules": [
        {
          "module_id": "@NAME@",
          "topic_filters": [{"filter_type": "Exact", "pattern": "@TOPIC@"}],
          "instance_config": {"memory_limit_bytes": 16777216, "execution_timeout_ms": 1000}
        }
      ]
    }
  ]
}
)~";

constexpr std::string_view kReadme = R"~(# @NAME@

A wasmq ETL module in @LANGUAGE@, made by `wasmq module init`. `@SOURCE@` reads JSON readings
such as `{"sensor": "s1", "celsius": 21.5}` and shows the three outcomes a module has:

| input value | result |
|---|---|
| an object with a numeric `celsius` | transformed: `fahrenheit` added, header `converted-by: @NAME@` |
| `"type": "heartbeat"` | filtered: no output, nothing stored |
| anything else | an error result (the pipeline below dead-letters the message) |

## Build and try it

```sh
wasmq module build
```

builds `@WASM@`, checks it as the broker checks an upload (exports, imports, limits, that V8
compiles it), and runs it on every line of `sample.ndjson`, printing one result line per message
as `wasmq transform run` does. Add lines to `sample.ndjson` (`{"key": ..., "value": ...,
"headers": {...}}`, one message per line) to try more cases. It exits non-zero when the build or
the check fails; a message the module fails on is a result, not a failure.

## Deploy

With a broker running (`wasmq serve`; `--admin` and `--broker`, or `WASMQ_ADMIN` and
`WASMQ_BROKER`, say where it is when it is not on localhost):

```sh
wasmq module deploy @WASM@ --name @NAME@ --version 0.1.0
wasmq pipeline apply -f pipeline.json
wasmq produce @TOPIC@ < sample.ndjson     # per message: stored, filtered or dead_lettered
wasmq consume @TOPIC@                     # the transformed readings
wasmq consume dlq.etl.@TOPIC@             # the messages the module failed on, with etl.error
```

`pipeline.json` runs the module on every message produced to `@TOPIC@` and sends the
messages it fails on to `dlq.etl.@TOPIC@`. A module version cannot be uploaded twice: deploy a
change with a higher `--version`; the pipeline names the module without a version, so it follows
the newest.

@TOOLCHAIN@)~";

constexpr std::string_view kRustToolchain = R"~(## Toolchain

`wasmq module build` runs Debian's Rust (`rustc` 1.63, `cargo`, `libstd-rust-dev-wasm32`),
offline, with the crates Debian packages (`.cargo/config.toml` points at
`/usr/share/cargo/registry`; add crates with `apt-get install librust-<name>-dev`):

```sh
PATH=/usr/bin:/bin cargo build --offline --release --target wasm32-wasi --lib
PATH=/usr/bin:/bin cargo test --offline      # the tests in src/lib.rs, natively
```

`PATH=/usr/bin:/bin` keeps a rustup toolchain earlier on `PATH` out. With rustup's Rust 1.84 or
later the target is called `wasm32-wasip1` (`rustup target add wasm32-wasip1`; remove
`.cargo/config.toml` to use crates.io). Build for WASI, not `wasm32-unknown-unknown` with
wasm-bindgen: the broker provides only `wasi_snapshot_preview1` imports. The SDK is
`@SDK_RUST@` (its README.md says what a module can use).
)~";

constexpr std::string_view kCToolchain = R"~(## Toolchain

`make` builds it with Debian's `clang-14`, `lld-14`, `wasi-libc` and `libclang-rt-14-dev-wasm32`:

```sh
clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -I@SDK_C@ -Wl,--strip-all \
  -o build/@NAME@.wasm @NAME@.c
```

The SDK is `@SDK_C@`: `wasmq_module.h` (its README.md says what a module gets and gives) and
`wasmq_json.h` (top-level JSON fields: get, set, remove; bounded, no allocation).
)~";

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

std::string project_topic(std::string_view name) { return std::string(name) + "-events"; }

std::vector<ProjectFile> project_files(const ProjectSpec& spec) {
  const bool rust = spec.language == ModuleLanguage::kRust;
  std::string sdk_rust_toml;  // a TOML basic string's escapes
  for (char c : (spec.sdk / "rust").string()) {
    if (c == '"' || c == '\\') sdk_rust_toml += '\\';
    sdk_rust_toml += c;
  }
  const std::string source = rust ? "src/lib.rs" : spec.name + ".c";
  const std::string wasm = (rust ? "target/" : "build/") + spec.name + ".wasm";
  std::vector<ProjectFile> files;
  if (rust) {
    files = {{"Cargo.toml", std::string(kCargoToml)},
             {".cargo/config.toml", std::string(kCargoConfig)},
             {source, std::string(kRustSource)},
             {".gitignore", "/target\n"}};
  } else {
    files = {{"Makefile", std::string(kMakefile)},
             {source, std::string(kCSource)},
             {".gitignore", "/build\n"}};
  }
  std::string readme(kReadme);
  replace_all(readme, "@TOOLCHAIN@", rust ? kRustToolchain : kCToolchain);
  files.push_back({"README.md", std::move(readme)});
  files.push_back({"sample.ndjson", std::string(kSample)});
  files.push_back({"pipeline.json", std::string(kPipeline)});
  for (ProjectFile& file : files) {
    replace_all(file.text, "@NAME@", spec.name);
    replace_all(file.text, "@TOPIC@", project_topic(spec.name));
    replace_all(file.text, "@LANGUAGE@", rust ? "Rust" : "C");
    replace_all(file.text, "@SOURCE@", source);
    replace_all(file.text, "@WASM@", wasm);
    replace_all(file.text, "@SDK_C@", (spec.sdk / "c").string());
    replace_all(file.text, "@SDK_RUST_TOML@", sdk_rust_toml);
    replace_all(file.text, "@SDK_RUST@", (spec.sdk / "rust").string());
  }
  return files;
}

}  // namespace wasmq::cli
