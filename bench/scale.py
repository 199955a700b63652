"""Sending through `clarion serve` instances on a database backend: SQLite with one
instance, PostgreSQL with one and with several, side by side in one run.

Run it with `./setup.sh bench --scale [--n 100000] [--instances 3]` (all three below), or
one configuration with `./setup.sh bench --db postgres --instances 3`. `./setup.sh bench`
starts a throw-away PostgreSQL cluster (`scripts/pg-cluster.sh`) for the run.

For each configuration:
1. A fresh database (a SQLite file, or a database of its own on the cluster), filled by
   `clarion import` with the same N subscriptions on the HTTPS sink.
2. The instances start with one shared VAPID key and admin token, 64 pushes in flight each.
3. A broadcast is queued on the first instance; the send is timed from the broadcast's own
   started/finished times, and the CPU time of every instance is read from /proc before
   and after (the sink's is not counted).
"""
import base64
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from subscribe import fresh_database

TOKEN = "bench-admin-token-0123456789abcdefghij"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def call(method: str, url: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_instances(binary: Path, n: int, subscriptions: Path, host: str, ca: Path, backend: str, instances: int,
                  free_port, wait_for_port) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"clarion-scale-{backend}-{instances}-"))
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    env = {**os.environ, **fresh_database(backend, f"scale_{os.getpid()}_{backend}_{instances}"),
           "CLARION_PUSH_HOSTS": host, "CLARION_EXTRA_CA_FILE": str(ca), "CLARION_VAPID_SUBJECT": "mailto:bench@clarion.dev",
           "CLARION_VAPID_PRIVATE_KEY": base64.urlsafe_b64encode(private).decode().rstrip("="),
           "CLARION_ADMIN_TOKEN": TOKEN, "CLARION_SEND_CONCURRENCY": "64", "RUST_LOG": "warn"}
    # SQLite: every instance would need the same file, which is one machine's only.
    data = work / "data"
    report = subprocess.run([binary, "import", subscriptions, "--data-dir", data], env=env, check=True, capture_output=True)
    assert json.loads(report.stdout)["stored"] == n, report.stdout
    servers, ports = [], []
    for i in range(instances):
        port = free_port()
        servers.append(subprocess.Popen([binary, "serve", "--data-dir", data if backend == "sqlite" else work / f"data-{i}"],
                                        env={**env, "CLARION_ADDR": f"127.0.0.1:{port}"},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    try:
        for port in ports:
            wait_for_port(port, 60)
        before = [cpu_seconds(s.pid) for s in servers]
        queued = call("POST", f"http://127.0.0.1:{ports[0]}/api/v1/notifications", {"title": "Clarion benchmark", "body": "bench"})
        while True:
            status = call("GET", f"http://127.0.0.1:{ports[0]}/api/v1/notifications/{queued['id']}")
            if status["status"] == "done":
                break
            time.sleep(0.05)
        cpu = sum(cpu_seconds(s.pid) - b for s, b in zip(servers, before))
        ranges_by = []
        for port in ports:
            metrics = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                                                    headers={"Authorization": f"Bearer {TOKEN}"})).read().decode()
            ranges_by.append(next((int(float(line.split()[-1])) for line in metrics.splitlines()
                                   if line.startswith("clarion_ranges_claimed_total")), 0))
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    seconds = (datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"])).total_seconds()
    return {"db": backend, "instances": instances, "pushes": n, "ok": status["delivered"], "seconds": seconds, "cpu_s": cpu,
            "ranges_by_instance": ranges_by}


def run(binary: Path, n: int, subscriptions: Path, host: str, ca: Path, configurations: list[tuple[str, int]], free_port,
        wait_for_port) -> list[dict]:
    for db, count in configurations:
        if db == "sqlite" and count != 1:
            raise SystemExit("SQLite serves one instance: its database is a file of one machine")
    results = [run_instances(binary, n, subscriptions, host, ca, db, count, free_port, wait_for_port) for db, count in configurations]
    print(f"\nN = {n} subscriptions, HTTPS sink, 64 in flight per instance, {os.cpu_count()} cores shared by all\n")
    print(f"{'db':<10}{'instances':>10}{'ok':>9}{'seconds':>9}{'pushes/s':>10}{'CPU ms/push':>13}  ranges per instance")
    for r in results:
        r["pushes_per_s"] = r["ok"] / r["seconds"]
        r["cpu_ms_per_push"] = r["cpu_s"] * 1000 / r["pushes"]
        print(f"{r['db']:<10}{r['instances']:>10}{r['ok']:>9}{r['seconds']:>9.2f}{r['pushes_per_s']:>10.0f}{r['cpu_ms_per_push']:>13.3f}"
              f"  {r['ranges_by_instance']}")
    print()
    print(json.dumps({"scale": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in results]}))
    return results
