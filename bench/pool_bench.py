#!/usr/bin/env python3
"""Instance pool benchmark: `make bench` runs it and writes bench/results/pool.json.

Produce throughput through a one-module pipeline (the passthrough module) with a cold pool and
with a warmed pool, side by side on one broker:
  cold  module "cold" on topic "cold", its pool PATCHed to max_pool_size 0 and
        warmup_instances 0: no instance is kept, so every module call instantiates the module
        (and the instance is dropped after). creation_rate_limit is lifted (100000/s) so that
        the figure is the cost of creating, not of waiting for the rate limit.
  warm  module "warm" on topic "warm", default pool settings, warmed through the warmup
        endpoint before the first round: every call reuses an instance.
Each topic is measured in interleaved rounds with our load generator (build/bench/wasmq-load),
with batches of 100 messages per request (one process_batch call per request: one instantiation
per 100 messages when cold) and of 1 message per request (one instantiation per message). The
best round per case counts. The pool figures after the run show that cold created an instance
per call and warm none.

Then build/bench/wasmq-bench-pool (Google Benchmark) gives the per-call cost of creation vs
reuse in one sandbox, without HTTP or storage.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench_broker import request, start_broker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_up(admin, modules_dir):
    with open(os.path.join(modules_dir, "passthrough.wasm"), "rb") as f:
        binary = f.read()
    for name in ("cold", "warm"):
        request(admin + "/api/v1/etl/modules", "POST", binary,
                {"Content-Type": "application/octet-stream", "X-Module-Name": name,
                 "X-Module-Version": "1.0.0"})
        request(admin + "/api/v1/etl/pipelines", "POST", json.dumps(
            {"pipeline_id": name, "stages": [{"priority": 0, "modules": [
                {"module_id": name,
                 "topic_filters": [{"filter_type": "Exact", "pattern": name}]}]}]}).encode())
    request(admin + "/api/v1/etl/instance-pool/cold", "PATCH", json.dumps(
        {"max_pool_size": 0, "warmup_instances": 0, "creation_rate_limit": 100000}).encode())
    request(admin + "/api/v1/etl/instance-pool/warmup", "POST", json.dumps(
        {"module_id": "warm", "instance_count": 2}).encode())


def pool_figures(admin):
    stats = request(admin + "/api/v1/etl/instance-pool/stats")
    out = {}
    for m in stats["modules"]:
        out[m["module_id"].split("-v")[0]] = {
            k: m[k] for k in ("size", "idle", "created", "created_for_calls", "reused",
                              "evicted", "hit_ratio", "memory_bytes")}
    return out


CASES = [("cold", 100), ("warm", 100), ("cold", 1), ("warm", 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=6)
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build_dir)
    wasmq = os.path.join(build, "wasmq")
    load = os.path.join(build, "bench", "wasmq-load")
    results_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)

    directory = tempfile.mkdtemp(prefix="wasmq-pool-bench-")
    proc, admin, host, port = start_broker(wasmq, directory, args.io_threads, args.workers)
    best, runs = {}, {}
    try:
        set_up(admin, os.path.join(build, "modules"))
        before = pool_figures(admin)
        for r in range(args.rounds):
            for topic, batch in CASES:
                name = f"{topic}_batch{batch}"
                out = subprocess.run([load, "--host", host, "--port", port, "--topic", topic,
                                      "--connections", str(args.connections), "--batch",
                                      str(batch), "--value-bytes", "100", "--json-values", "1",
                                      "--seconds", str(args.seconds)],
                                     capture_output=True, text=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                runs.setdefault(name, []).append(result)
                print(f"round {r + 1} {name:13}: {result['messages_per_second']:10,.0f} "
                      f"messages/s, p99 {result['p99_ms']:.2f} ms, errors {result['errors']}",
                      file=sys.stderr)
                if result["errors"] == 0 and (
                        name not in best or
                        result["messages_per_second"] > best[name]["messages_per_second"]):
                    best[name] = result
        after = pool_figures(admin)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    missing = [f"{t}_batch{b}" for t, b in CASES if f"{t}_batch{b}" not in best]
    if missing:
        sys.exit("every round had errors for " + ", ".join(missing))

    micro = subprocess.run([os.path.join(build, "bench", "wasmq-bench-pool"), "--modules",
                            os.path.join(build, "modules"), "--benchmark_min_time=0.2",
                            "--benchmark_format=json"], capture_output=True, text=True)
    if micro.returncode != 0:
        sys.exit("wasmq-bench-pool failed: " + micro.stderr)
    micro_runs = json.loads(micro.stdout)["benchmarks"]
    ns = {b["name"].removeprefix("BM_"): b["real_time"] for b in micro_runs}
    cpu_ns = {b["name"].removeprefix("BM_"): b["cpu_time"] for b in micro_runs}
    creation_ns = {
        "passthrough": ns["Call_Create_Passthrough"] - ns["Call_Reuse_Passthrough"],
        "message_processor": ns["Call_Create_MessageProcessor"] - ns["Call_Reuse_MessageProcessor"],
    }

    def ratio(a, b):
        return best[a]["messages_per_second"] / best[b]["messages_per_second"]

    report = {
        "method": f"one broker, cases interleaved, best of {args.rounds} rounds of "
                  f"{args.seconds}s each; {args.connections} keep-alive connections, ~100-byte "
                  f"JSON values, fsync interval 50 ms, io_threads {args.io_threads}, etl.workers "
                  f"{args.workers}, load generator on the same machine. cold: max_pool_size 0 "
                  f"(every module call instantiates; one call per request); warm: pool warmed "
                  f"before the first round",
        "produce": {name: {"messages_per_second": r["messages_per_second"],
                           "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
                    for name, r in best.items()},
        "warm_over_cold": {"batch100": ratio("warm_batch100", "cold_batch100"),
                           "batch1": ratio("warm_batch1", "cold_batch1")},
        "pool_figures_before": before,
        "pool_figures_after": after,
        "call_ns": ns,
        "call_cpu_ns": cpu_ns,
        "creation_ns_per_call": creation_ns,
        "runs": runs,
    }
    with open(os.path.join(results_dir, "pool.json"), "w") as f:
        json.dump(report, f, indent=2)
    print()
    print("Instance pool benchmark (bench/results/pool.json)")
    for batch in (100, 1):
        c, w = best[f"cold_batch{batch}"], best[f"warm_batch{batch}"]
        print(f"  produce, {batch:3} msg/request: cold {c['messages_per_second']:10,.0f}  "
              f"warm {w['messages_per_second']:10,.0f} messages/s  "
              f"(warm/cold {w['messages_per_second'] / c['messages_per_second']:.2f}x; "
              f"p99 {c['p99_ms']:.2f} vs {w['p99_ms']:.2f} ms)")
    for module in ("cold", "warm"):
        f = after[module]
        print(f"  {module}: created for calls {f['created_for_calls']}, reused {f['reused']}, "
              f"hit ratio {f['hit_ratio']:.3f}")
    print("  per call, one sandbox (ns, wall; CPU in brackets):")
    for create, reuse in (("Call_Create_Passthrough", "Call_Reuse_Passthrough"),
                          ("Call_Create_MessageProcessor", "Call_Reuse_MessageProcessor"),
                          ("Batch100_Create_Passthrough", "Batch100_Reuse_Passthrough")):
        print(f"    {create:30} {ns[create]:10,.0f} ({cpu_ns[create]:,.0f})   "
              f"{reuse:28} {ns[reuse]:8,.0f} ({cpu_ns[reuse]:,.0f})")
    for module, v in creation_ns.items():
        print(f"    creating an instance of {module}: {v:,.0f} ns per call")


if __name__ == "__main__":
    main()
