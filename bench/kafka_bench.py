#!/usr/bin/env python3
"""Kafka protocol benchmark: `make bench` runs it and writes bench/results/kafka.json.

One broker (fsync = "interval" 50 ms, io_threads 1, the Kafka listener on), and our librdkafka
load generator (build/bench/wasmq-kafka-load: an idempotent producer, acks=all, linger 5 ms,
100-byte values with keys, one partition). In interleaved rounds, best of --rounds:
  mock      the same producer against librdkafka's own in-memory mock cluster (rdkafka_mock.h),
            in the load generator's process: the baseline;
  kafka     the producer against wasmq;
  http      wasmq's HTTP produce of messages of the same size (build/bench/wasmq-load, 6
            keep-alive connections, batches of 100, for --seconds);
  consume   a librdkafka consumer reading the kafka case's topic from the beginning;
  pipeline  the producer against a topic behind a one-module pipeline (passthrough_single, a
            light module without process_batch, as the ETL bench's `single`).
Client and broker share the machine's two cores.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench_broker import start_broker
import etl_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build_dir)
    kload = os.path.join(build, "bench", "wasmq-kafka-load")
    hload = os.path.join(build, "bench", "wasmq-load")
    results_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)

    def run(cmd):
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        if not lines:
            sys.exit(f"{' '.join(cmd)} printed nothing: {out.stderr[-2000:]}")
        return json.loads(lines[-1])

    directory = tempfile.mkdtemp(prefix="wasmq-kafka-bench-")
    proc, admin, host, port, kafka = start_broker(os.path.join(build, "wasmq"), directory, 1, 2, kafka=True)
    best, runs = {}, {}
    try:
        etl_bench.upload(admin, os.path.join(build, "modules"), "passthrough_single", "single")
        etl_bench.pipeline(admin, {"pipeline_id": "kafka-single", "stages": [{"priority": 0, "modules": [
            {"module_id": "single", "topic_filters": [{"filter_type": "Prefix", "pattern": "through-"}]}]}]})
        for r in range(args.rounds):
            cases = {
                "mock": [kload, "produce", "--mock", "--topic", f"mock-{r}", "--messages", str(args.messages)],
                "kafka": [kload, "produce", "--bootstrap", kafka, "--topic", f"plain-{r}",
                          "--messages", str(args.messages)],
                "http": [hload, "--host", host, "--port", port, "--topic", f"http-{r}", "--connections", "6",
                         "--batch", "100", "--value-bytes", "100", "--seconds", str(args.seconds)],
                "consume": [kload, "consume", "--bootstrap", kafka, "--topic", f"plain-{r}",
                            "--messages", str(args.messages)],
                "pipeline": [kload, "produce", "--bootstrap", kafka, "--topic", f"through-{r}",
                             "--messages", str(args.messages // 4)],
            }
            for name, cmd in cases.items():
                result = run(cmd)
                runs.setdefault(name, []).append(result)
                print(f"round {r + 1} {name:9}: {result['messages_per_second']:12,.0f} messages/s, "
                      f"errors {result['errors']}", file=sys.stderr)
                if result["errors"] == 0 and (name not in best or
                                              result["messages_per_second"] > best[name]["messages_per_second"]):
                    best[name] = result
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    missing = [n for n in ("mock", "kafka", "http", "consume", "pipeline") if n not in best]
    if missing:
        sys.exit("every round had errors for " + ", ".join(missing) + ": " +
                 json.dumps({m: runs[m][-1] for m in missing}))
    mps = {n: best[n]["messages_per_second"] for n in best}
    report = {
        "method": f"one broker (fsync interval 50 ms, io_threads 1, etl.workers 2); librdkafka "
                  f"idempotent producer (acks=all, linger.ms 5, 100-byte values with keys, one "
                  f"partition), {args.messages:,} messages per produce case (a quarter through the "
                  f"pipeline); HTTP: wasmq-load, 6 connections, batches of 100, {args.seconds}s; best "
                  f"of {args.rounds} interleaved rounds",
        "messages_per_second": mps,
        "kafka_vs_mock": mps["kafka"] / mps["mock"],
        "kafka_vs_http": mps["kafka"] / mps["http"],
        "pipeline_vs_kafka": mps["pipeline"] / mps["kafka"],
        "targets": {"kafka_vs_mock": 0.6, "kafka_vs_http": 2.0, "consume_messages_per_second": 1_000_000},
        "runs": runs,
    }
    with open(os.path.join(results_dir, "kafka.json"), "w") as f:
        json.dump(report, f, indent=2)
    print("\nKafka benchmark (bench/results/kafka.json)")
    print(f"  librdkafka mock cluster {mps['mock']:12,.0f} messages/s")
    print(f"  wasmq over Kafka        {mps['kafka']:12,.0f} messages/s   {report['kafka_vs_mock']:.2f}x of the mock (target >= 0.6)")
    print(f"  wasmq over HTTP         {mps['http']:12,.0f} messages/s   Kafka is {report['kafka_vs_http']:.2f}x of it (target >= 2)")
    print(f"  consume from the start  {mps['consume']:12,.0f} messages/s   (target >= 1,000,000)")
    print(f"  through one module      {mps['pipeline']:12,.0f} messages/s   {report['pipeline_vs_kafka']:.2f}x of no pipeline")


if __name__ == "__main__":
    main()
