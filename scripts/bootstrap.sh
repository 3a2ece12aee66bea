#!/usr/bin/env bash
# Installs everything the build, the tests and the module toolchains need, from Debian's archive.
# Idempotent: when everything is present it touches nothing and returns in well under a second.
#
# V8 comes from Debian's libnode108/libnode-dev, unpacked into a build-local prefix
# (.deps/libnode) instead of installed: the machine's NodeSource Node.js conflicts with libnode108.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.deps/libnode"

packages=(
  # C++ build
  cmake g++ make pkg-config ninja-build
  libboost1.81-dev libsimdjson-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libre2-dev libssl-dev zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev googletest libgtest-dev libgmock-dev libbenchmark-dev
  # V8's runtime libraries (libnode108 itself is unpacked below)
  libicu72 libuv1 libuv1-dev libc-ares2 libnghttp2-14 libbrotli1 libssl3 zlib1g
  # C/C++ modules -> wasm32-wasi
  clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32
  # fuzz targets: libFuzzer and the sanitizer runtimes of clang-14 (make fuzz)
  libclang-rt-14-dev
  # Rust modules -> wasm32-wasi, offline from Debian's crates
  rustc cargo libstd-rust-dev-wasm32
  librust-serde-dev librust-serde-derive-dev librust-serde-json-dev librust-bincode-dev
  # inspection of modules, tests
  binaryen wabt curl jq python3 openssl
  # Kafka clients for the Kafka protocol's tests (none of them is ours), and librdkafka's mock
  # cluster for its benchmark
  kcat python3-confluent-kafka python3-kafka librdkafka-dev
)

missing=()
installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)"
for p in "${packages[@]}"; do
  grep -qx "$p installed" <<<"$installed" || missing+=("$p")
done

need_v8=0
[ -f "$prefix/usr/lib/x86_64-linux-gnu/libnode.so.108" ] && [ -f "$prefix/usr/include/node/v8.h" ] || need_v8=1

# KafkaJS (a Kafka client the tests use, from the npm registry) in a git-ignored folder; npm
# from Debian when the machine has none.
kafkajs="$root/.deps/kafkajs"
kafkajs_version="2.2.4"
need_kafkajs=0
grep -qs "\"version\": \"$kafkajs_version\"" "$kafkajs/node_modules/kafkajs/package.json" || need_kafkajs=1
if [ $need_kafkajs -eq 1 ] && ! command -v npm >/dev/null; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ] && [ $need_v8 -eq 0 ] && [ $need_kafkajs -eq 0 ]; then
  exit 0
fi

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive

what="${missing[*]}"
[ $need_v8 -eq 1 ] && what="${what:+$what, }V8 (libnode108)"
if [ -n "$what" ]; then
  echo "bootstrap: installing $what" >&2
  "${as_root[@]}" apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $need_v8 -eq 1 ]; then
  work="$(mktemp -d)"
  chmod 755 "$work"  # apt's download user must be able to write there
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -qq libnode108 libnode-dev)
  rm -rf "$prefix"
  mkdir -p "$prefix"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$prefix"; done
  [ -f "$prefix/usr/lib/x86_64-linux-gnu/libnode.so.108" ] || { echo "bootstrap: libnode.so.108 missing after unpack" >&2; exit 1; }
fi
if [ $need_kafkajs -eq 1 ]; then
  echo "bootstrap: installing KafkaJS $kafkajs_version into .deps/kafkajs" >&2
  mkdir -p "$kafkajs"
  npm install --no-audit --no-fund --silent --prefix "$kafkajs" "kafkajs@$kafkajs_version" >/dev/null
  grep -qs "\"version\": \"$kafkajs_version\"" "$kafkajs/node_modules/kafkajs/package.json" ||
    { echo "bootstrap: KafkaJS missing after npm install" >&2; exit 1; }
fi
echo "bootstrap: done" >&2
