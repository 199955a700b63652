"""Subscribe latency as the audience grows: p50 and p99 of `POST /api/v1/subscriptions`
with 0, 100k and 1M subscriptions already stored.

Run it with `./setup.sh bench --subscribe [--db sqlite,postgres] [--stored 0,100000,1000000]
[--requests N]`. With `postgres`, `./setup.sh bench` starts a throw-away cluster
(`scripts/pg-cluster.sh`) and each measurement gets a database of its own on it.

For each backend and stored count:
1. `clarion import` stores that many subscriptions into a fresh database (one P-256 key
   for all of them: the store does not care, and generating a million keys would take
   longer than the measurement).
2. `clarion serve` starts on it with its default settings (and any `CLARION_*` variables
   of the caller's environment), except the per-client limits, which are turned off
   because every request comes from 127.0.0.1.
3. N new subscriptions are posted one after another over one keep-alive connection, and
   each request's wall time is recorded. Answers other than 201 are counted (a full
   server answers 503 quickly, which would flatter the figures).
"""
import base64
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PUSH_HOST = "127.0.0.1:9"  # never contacted: subscribing sends nothing


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def subscription(i: int, p256dh: str, auth: str, prefix: str) -> dict:
    return {"endpoint": f"http://{PUSH_HOST}/push/{prefix}{i}", "expirationTime": None, "keys": {"p256dh": p256dh, "auth": auth}}


def seed(binary: Path, data: Path, stored: int, p256dh: str, auth: str, env: dict) -> float:
    """Stores `stored` subscriptions with `clarion import`; answers the seconds it took."""
    started = time.perf_counter()
    importer = subprocess.Popen([binary, "import", "-", "--data-dir", data], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert importer.stdin is not None
    chunk = []
    for i in range(stored):
        chunk.append(json.dumps(subscription(i, p256dh, auth, "seed-")))
        if len(chunk) == 10_000:
            importer.stdin.write(("\n".join(chunk) + "\n").encode())
            chunk.clear()
    if chunk:
        importer.stdin.write(("\n".join(chunk) + "\n").encode())
    out, _ = importer.communicate()
    if importer.returncode != 0:
        raise RuntimeError(f"clarion import failed: {out[-2000:]!r}")
    if stored and json.loads(out)["stored"] != stored:
        raise RuntimeError(f"clarion import stored the wrong count: {out!r}")
    return time.perf_counter() - started


def fresh_database(backend: str, name: str) -> dict:
    """The environment that points Clarion at a fresh database of `backend`."""
    if backend == "sqlite":
        return {}
    admin = os.environ.get("CLARION_TEST_DATABASE_URL")
    if not admin:
        raise SystemExit("PostgreSQL runs need the cluster that ./setup.sh bench starts (CLARION_TEST_DATABASE_URL)")
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return {"CLARION_DATABASE_URL": admin.rsplit("/", 1)[0] + "/" + name}


def measure(binary: Path, backend: str, stored: int, requests: int, free_port, wait_for_port) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"clarion-subscribe-{stored}-"))
    database = fresh_database(backend, f"bench_{os.getpid()}_{backend}_{stored}")
    env = {**os.environ, "CLARION_PUSH_HOSTS": PUSH_HOST, "RUST_LOG": "warn", **database}
    key = ec.generate_private_key(ec.SECP256R1())
    p256dh = b64(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    auth = b64(os.urandom(16))
    seconds = seed(binary, data, stored, p256dh, auth, env)
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", data],
        env={**env, "CLARION_ADDR": f"127.0.0.1:{port}", "CLARION_SUBSCRIBE_RATE_LIMIT": "0", "CLARION_WRITE_RATE_LIMIT": "0",
             "CLARION_MAX_SUBSCRIPTIONS_PER_IP": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        connection = http.client.HTTPConnection("127.0.0.1", port)
        latencies, refused = [], {}
        for i in range(requests):
            body = json.dumps(subscription(i, p256dh, auth, "new-"))
            started = time.perf_counter()
            connection.request("POST", "/api/v1/subscriptions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 201:
                refused[response.status] = refused.get(response.status, 0) + 1
        connection.close()
    finally:
        server.terminate()
        server.wait()
    latencies.sort()
    return {"db": backend, "stored": stored, "requests": requests, "refused": refused, "seed_s": seconds,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def run(binary: Path, backends: list[str], stored_counts: list[int], requests: int, free_port, wait_for_port) -> list[dict]:
    results = [measure(binary, backend, stored, requests, free_port, wait_for_port) for backend in backends for stored in stored_counts]
    print(f"\nsubscribe latency, {requests} sequential requests over one connection\n")
    print(f"{'db':<10}{'stored':>10}{'p50 ms':>10}{'p99 ms':>10}{'seeded in s':>14}  not 201")
    for r in results:
        print(f"{r['db']:<10}{r['stored']:>10}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['seed_s']:>14.1f}  {r['refused'] or '-'}")
    ratios = {}
    for backend in backends:
        mine = [r for r in results if r["db"] == backend]
        ratios[backend] = round(mine[-1]["p50_ms"] / mine[0]["p50_ms"], 2)
    print()
    print(json.dumps({"subscribe": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in results],
                      "p50_ratio_largest_vs_first": ratios}))
    return results
