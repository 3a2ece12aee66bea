// wasmq-bench-pool: what one module call costs when the instance pool has an instance ready
// (reuse) and when it has none (creation: max_pool_size 0, every call instantiates and the
// instance is dropped after), side by side, in one Sandbox on one thread, as an ETL worker runs
// them. Creation costs the difference.
//
// Modules: passthrough (C, the SDK's smallest) and message_processor (Rust), built by the tests'
// build into build/modules. Message: ~100-byte JSON value, a key and one header. A call is
// process_message on one message, or process_batch on 100 (the produce path's batches).
//
// Run: build/bench/wasmq-bench-pool --modules build/modules --benchmark_min_time=0.2
// The time of a creating call includes the V8 garbage collections that free dropped instances'
// memories, as a cold pool pays them (partly on V8's platform thread: real time > CPU time).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "wasm/sandbox.h"

namespace wasmq::wasm {
namespace {

std::string g_modules_dir = "build/modules";

Message bench_message() {
  Message m;
  m.key = "sensor-17";
  m.value =
      R"({"sensor_id":"sensor-17","sensor_type":"temperature","unit":"celsius","reading":42.5,)"
      R"("site":"north"})";
  m.headers = {{"content-type", "application/json"}};
  m.timestamp = 1763800000000;
  return m;
}

// A sandbox whose pool keeps instances (`keep` true) or none (max_pool_size 0), with `module`.
struct Setup {
  std::unique_ptr<Sandbox> sandbox;
  std::shared_ptr<const Module> module;
};

Setup make(const std::string& module_name, bool keep) {
  PoolOptions options;
  options.defaults.max_pool_size = keep ? 50 : 0;
  options.defaults.creation_rate_limit = 0;  // no limit: measure creation itself
  auto sandbox = Sandbox::create(options);
  if (!sandbox.is_ok()) {
    std::fprintf(stderr, "%s\n", sandbox.status().message().c_str());
    std::exit(1);
  }
  std::ifstream in(g_modules_dir + "/" + module_name + ".wasm", std::ios::binary);
  std::vector<uint8_t> binary{std::istreambuf_iterator<char>(in), {}};
  if (binary.empty()) {
    std::fprintf(stderr, "%s/%s.wasm is missing (build the tests' modules)\n",
                 g_modules_dir.c_str(), module_name.c_str());
    std::exit(1);
  }
  auto module = (*sandbox)->load(module_name, binary, {});
  if (!module.is_ok()) {
    std::fprintf(stderr, "%s\n", module.status().message().c_str());
    std::exit(1);
  }
  return {std::move(*sandbox), std::move(*module)};
}

void single_call(benchmark::State& state, const std::string& module_name, bool keep) {
  Setup s = make(module_name, keep);
  Message m = bench_message();
  if (!s.sandbox->process(s.module, m).is_ok()) state.SkipWithError("call failed");
  Sandbox::Scope entered(*s.sandbox);
  for (auto _ : state) {
    auto r = s.sandbox->process(s.module, m);
    if (!r.is_ok()) {
      state.SkipWithError(r.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  auto figures = s.sandbox->pool_figures()->snapshot();
  if (!figures.empty()) {
    state.counters["hit_ratio"] = figures[0].hit_ratio();
    state.counters["instances_created"] = static_cast<double>(figures[0].created);
  }
}

void batch_call(benchmark::State& state, const std::string& module_name, bool keep) {
  Setup s = make(module_name, keep);
  std::vector<Message> batch(100, bench_message());
  if (!s.sandbox->process_batch(s.module, batch).is_ok()) state.SkipWithError("call failed");
  Sandbox::Scope entered(*s.sandbox);
  for (auto _ : state) {
    auto r = s.sandbox->process_batch(s.module, batch);
    if (!r.is_ok()) {
      state.SkipWithError(r.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

void BM_Call_Reuse_Passthrough(benchmark::State& s) { single_call(s, "passthrough", true); }
void BM_Call_Create_Passthrough(benchmark::State& s) { single_call(s, "passthrough", false); }
void BM_Call_Reuse_MessageProcessor(benchmark::State& s) {
  single_call(s, "message_processor", true);
}
void BM_Call_Create_MessageProcessor(benchmark::State& s) {
  single_call(s, "message_processor", false);
}
void BM_Batch100_Reuse_Passthrough(benchmark::State& s) { batch_call(s, "passthrough", true); }
void BM_Batch100_Create_Passthrough(benchmark::State& s) { batch_call(s, "passthrough", false); }

BENCHMARK(BM_Call_Reuse_Passthrough);
BENCHMARK(BM_Call_Create_Passthrough);
BENCHMARK(BM_Call_Reuse_MessageProcessor);
BENCHMARK(BM_Call_Create_MessageProcessor);
BENCHMARK(BM_Batch100_Reuse_Passthrough);
BENCHMARK(BM_Batch100_Create_Passthrough);

}  // namespace
}  // namespace wasmq::wasm

int main(int argc, char** argv) {
  // --modules DIR is ours; the rest is Google Benchmark's.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--modules") == 0 && i + 1 < argc) {
      wasmq::wasm::g_modules_dir = argv[++i];
      continue;
    }
    rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  if (!wasmq::wasm::initialize_engine().is_ok()) return 1;
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
