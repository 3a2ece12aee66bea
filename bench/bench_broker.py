"""What the broker benchmarks share: starting `wasmq serve` on loopback ports with a fresh data
directory, and JSON requests to its APIs."""
import json
import os
import re
import subprocess
import sys
import urllib.request


def start_broker(wasmq, directory, io_threads, workers=None, kafka=False):
    """Starts the broker with fsync = "interval" (50 ms); returns (process, admin URL, data host,
    data port), and with `kafka` the Kafka listener's host:port last. `workers` sets etl.workers
    when given."""
    config = os.path.join(directory, "broker.toml")
    etl = f"[etl]\nworkers = {workers}\n" if workers is not None else ""
    kafka_section = '[kafka]\nlisten = "127.0.0.1:0"\n' if kafka else ""
    with open(config, "w") as f:
        f.write(f"""[broker]
data_dir = "{os.path.join(directory, 'data')}"
listen = "127.0.0.1:0"
io_threads = {io_threads}
[admin]
listen = "127.0.0.1:0"
[storage]
fsync = "interval"
fsync_interval_ms = 50
{etl}{kafka_section}[logging]
level = "warn"
""")
    proc = subprocess.Popen([wasmq, "serve", "--config", config], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(directory, "broker.log"), "w"), text=True)
    # Ready lines: "wasmq: admin API on ...", with Kafka "wasmq: Kafka API on ...", then
    # "wasmq: data API on ...".
    admin = re.search(r"admin API on (http://\S+)", proc.stdout.readline())
    kafka_address = re.search(r"Kafka API on (\S+)", proc.stdout.readline()) if kafka else None
    data = re.search(r"data API on http://([0-9.]+):(\d+)", proc.stdout.readline())
    if not admin or not data or (kafka and not kafka_address):
        proc.kill()
        sys.exit("broker did not start: " + open(os.path.join(directory, "broker.log")).read())
    if kafka:
        return proc, admin.group(1), data.group(1), data.group(2), kafka_address.group(1)
    return proc, admin.group(1), data.group(1), data.group(2)


def request(url, method="GET", body=None, headers=None):
    """A request whose reply is JSON; raises on an HTTP error."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())
