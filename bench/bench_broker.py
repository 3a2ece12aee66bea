"""What the broker benchmarks share: starting `wasmq serve` on loopback ports with a fresh data
directory, and JSON requests to its APIs."""
import json
import os
import re
import subprocess
import sys
import urllib.request


def start_broker(wasmq, directory, io_threads, workers=None):
    """Starts the broker with fsync = "interval" (50 ms); returns (process, admin URL, data host,
    data port). `workers` sets etl.workers when given."""
    config = os.path.join(directory, "broker.toml")
    etl = f"[etl]\nworkers = {workers}\n" if workers is not None else ""
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
{etl}[logging]
level = "warn"
""")
    proc = subprocess.Popen([wasmq, "serve", "--config", config], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(directory, "broker.log"), "w"), text=True)
    # Ready lines: "wasmq: admin API on ...", then "wasmq: data API on ...".
    admin = re.search(r"admin API on (http://\S+)", proc.stdout.readline())
    data = re.search(r"data API on http://([0-9.]+):(\d+)", proc.stdout.readline())
    if not admin or not data:
        proc.kill()
        sys.exit("broker did not start: " + open(os.path.join(directory, "broker.log")).read())
    return proc, admin.group(1), data.group(1), data.group(2)


def request(url, method="GET", body=None, headers=None):
    """A request whose reply is JSON; raises on an HTTP error."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())
