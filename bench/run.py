"""Clarion's send benchmark, side by side with Node `web-push` and `pywebpush`.

Run it with `./setup.sh bench [--n N] [--no-peers]` (that installs and builds what it
needs), or directly with the venv's Python once everything is built.

1. Makes a CA and a certificate for 127.0.0.1, and starts two `clarion push-service
   --sink` instances: HTTPS (HTTP/2 via ALPN) and plain HTTP. A sink accepts any
   well-formed push with 201 and keeps nothing.
2. Generates N subscriptions with real P-256 keys (one set of keys, an endpoint on
   each sink).
3. Clarion: `clarion import` into a fresh SQLite database, then `clarion send`, once per
   sink. The send phase is timed from the broadcast's own started/finished times.
4. The peers, on the same subscriptions, 64 in flight each: Node `web-push` and pywebpush
   on the HTTPS sink (Node `web-push` speaks only https), and the Rust `web-push` crate
   (examples/web_push_peer.rs) on both sinks.
5. The encryption floor (examples/encryption_floor.rs): Clarion's per-message encryption
   alone on one thread, in the same run, so that a slower or busier machine shows in it
   too; the table's last column is each sender's pushes/CPU-s as a share of it.
6. Prints a table and a JSON line. With `--repeat K` it does steps 3 to 5 K times on the
   same subscriptions and ends with the medians (and ranges) as the final JSON line.
CPU time and peak RSS come from the kernel (wait4 rusage) for each sender's process.
"""
import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "clarion"
WEB_PUSH_PEER = ROOT / "target" / "release" / "examples" / "web_push_peer"
ENCRYPTION_FLOOR = ROOT / "target" / "release" / "examples" / "encryption_floor"
SUBJECT = "mailto:bench@clarion.dev"
PAYLOAD = json.dumps({"title": "Clarion benchmark", "body": "A typical notification body, about a hundred bytes long in all.", "url": "/news/42"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measured(cmd, env=None, cwd=None):
    """Runs a command to completion; returns (stdout, wall seconds, cpu seconds, peak RSS MB)."""
    out = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, env={**os.environ, **(env or {})}, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out.seek(0)
    text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed ({status}): {text[-2000:]}")
    return text, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    ca_key, ca_crt = directory / "ca.key", directory / "ca.pem"
    key, csr, crt = directory / "sink.key", directory / "sink.csr", directory / "sink.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=Clarion bench CA", "-keyout", ca_key, "-out", ca_crt,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "2", "-extfile", ext, "-out", crt], **quiet)
    return ca_crt, crt, key


def write_subscriptions(n: int, origins: dict[str, str], directory: Path) -> dict[str, Path]:
    files = {name: open(directory / f"subscriptions-{name}.jsonl", "w") for name in origins}
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        p256dh = b64(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        auth = b64(os.urandom(16))
        for name, origin in origins.items():
            files[name].write(json.dumps({"endpoint": f"{origin}/push/{i}", "expirationTime": None,
                                          "keys": {"p256dh": p256dh, "auth": auth}}) + "\n")
    for f in files.values():
        f.close()
    return {name: directory / f"subscriptions-{name}.jsonl" for name in origins}


def run_clarion(n, subscriptions: Path, host: str, ca: Path, directory: Path, label: str, prefix=()) -> dict:
    data = directory / f"clarion-{label}"
    env = {"CLARION_PUSH_HOSTS": host, "CLARION_EXTRA_CA_FILE": str(ca), "CLARION_VAPID_SUBJECT": SUBJECT,
           "CLARION_SEND_CONCURRENCY": "64", "RUST_LOG": "warn"}
    report, *_ = measured([BIN, "import", subscriptions, "--data-dir", data], env)
    assert json.loads(report)["stored"] == n, report
    summary, wall, cpu, rss = measured([*prefix, BIN, "send", "--title", "Clarion benchmark", "--body", "bench", "--json",
                                        "--data-dir", data], env)
    s = json.loads(summary)
    seconds = (datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds()
    return {"sender": "clarion", "transport": label, "pushes": n, "ok": s["delivered"], "seconds": seconds, "cpu_s": cpu, "rss_mb": rss,
            "process_seconds": wall}


def run_peer(name, cmd, env, n) -> dict:
    out, wall, cpu, rss = measured(cmd, env, cwd=Path(__file__).parent)
    r = json.loads(out.strip().splitlines()[-1])
    return {"sender": name, "transport": "https", "pushes": n, "ok": r["ok"], "seconds": r["seconds"], "cpu_s": cpu, "rss_mb": rss,
            "process_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="subscriptions (10k by default; 100k and 1M as options)")
    parser.add_argument("--repeat", type=int, default=1, metavar="K",
                        help="run the send comparison K times on the same subscriptions; prints each round and the medians")
    parser.add_argument("--no-peers", action="store_true", help="measure Clarion only (for the memory runs at 1M)")
    parser.add_argument("--perf", metavar="FILE", help="record Clarion's https send with `perf record -e cpu-clock -g` into FILE")
    parser.add_argument("--subscribe", action="store_true", help="measure subscribe latency as the audience grows (bench/subscribe.py)")
    parser.add_argument("--stored", default="0,100000,1000000", help="with --subscribe: stored counts, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="with --subscribe: subscribes measured at each count")
    parser.add_argument("--db", default=None, help="backends, comma-separated (sqlite, postgres): with --subscribe, the ones measured; "
                        "otherwise, send through `clarion serve` instances on each (bench/scale.py)")
    parser.add_argument("--instances", type=int, default=None, help="send through N `clarion serve` instances (bench/scale.py)")
    parser.add_argument("--topic-share", type=float, default=None, metavar="F",
                        help="send to a topic that a share F of the subscriptions chose, beside a send to everyone (bench/audience.py)")
    parser.add_argument("--scale", action="store_true", help="send through `clarion serve` instances: SQLite x1, PostgreSQL x1 and "
                        "x --instances (3 by default), side by side")
    args = parser.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run ./setup.sh bench")
    if args.subscribe:
        import subscribe

        subscribe.run(BIN, (args.db or "sqlite").split(","), [int(n) for n in args.stored.split(",")], args.requests, free_port, wait_for_port)
        return
    work = Path(tempfile.mkdtemp(prefix="clarion-bench-"))
    ca, crt, key = make_certificates(work)
    tls_port, http_port = free_port(), free_port()
    sinks = [
        subprocess.Popen([BIN, "push-service", "--sink", "--addr", f"127.0.0.1:{tls_port}", "--tls-cert", crt, "--tls-key", key],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"}),
        subprocess.Popen([BIN, "push-service", "--sink", "--addr", f"127.0.0.1:{http_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"}),
    ]
    try:
        wait_for_port(tls_port)
        wait_for_port(http_port)
        t0 = time.perf_counter()
        files = write_subscriptions(args.n, {"https": f"https://127.0.0.1:{tls_port}", "http": f"http://127.0.0.1:{http_port}"}, work)
        print(f"generated {args.n} subscriptions with real P-256 keys in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        if args.topic_share:
            import audience

            audience.run(BIN, args.n, files["https"], f"127.0.0.1:{tls_port}", ca, args.topic_share, work, measured)
            return
        if args.scale or args.db or args.instances:
            import scale

            if args.scale:
                configurations = [("sqlite", 1), ("postgres", 1), ("postgres", args.instances or 3)]
            else:
                configurations = [(db, args.instances or 1) for db in (args.db or "sqlite").split(",")]
            scale.run(BIN, args.n, files["https"], f"127.0.0.1:{tls_port}", ca, configurations, free_port, wait_for_port)
            return
        # Only the send comparison measures the floor.
        if not ENCRYPTION_FLOOR.exists():
            sys.exit(f"{ENCRYPTION_FLOOR} is missing: run ./setup.sh bench")
        prefix = ("perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", args.perf) if args.perf else ()
        lines = []
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"\nround {round_no} of {args.repeat}", file=sys.stderr)
            results = send_round(args, files, tls_port, http_port, ca, work / f"round-{round_no}", prefix if round_no == 1 else ())
            floor = json.loads(subprocess.run([ENCRYPTION_FLOOR, str(args.n), str(len(PAYLOAD))], check=True, capture_output=True,
                                              text=True).stdout)
            lines.append(report_round(args.n, results, floor))
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait()
    if args.repeat > 1:
        # Single runs vary here by more than the changes measured: the medians, and the range.
        median = {"n": args.n, "rounds": args.repeat}
        print(f"\nOver {args.repeat} rounds: median (lowest to highest)")
        for key in (key for key in lines[0] if key != "n"):
            values = [line[key] for line in lines if isinstance(line[key], (int, float))]
            if len(values) == len(lines):
                median[key] = statistics.median(values)
                print(f"  {key:<32}{median[key]:>10}  ({min(values)} to {max(values)})")
        print()
        print(json.dumps(median))


def send_round(args, files, tls_port, http_port, ca, work: Path, prefix) -> list:
    """Clarion over both sinks, then the peers, on the same subscriptions."""
    work.mkdir()
    results = [run_clarion(args.n, files["https"], f"127.0.0.1:{tls_port}", ca, work, "https", prefix),
               run_clarion(args.n, files["http"], f"127.0.0.1:{http_port}", ca, work, "http")]
    if not args.no_peers:
        vapid = ec.generate_private_key(ec.SECP256R1())
        public = b64(vapid.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        private = b64(vapid.private_numbers().private_value.to_bytes(32, "big"))
        pem = work / "vapid.pem"
        pem.write_bytes(vapid.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        results.append(run_peer("node web-push 3.6.7", ["node", "peers/node_web_push.mjs", files["https"], public, private, SUBJECT, PAYLOAD],
                                {"NODE_EXTRA_CA_CERTS": str(ca)}, args.n))
        results.append(run_peer("pywebpush 2.5.0", [sys.executable, "peers/pywebpush_peer.py", files["https"], pem, SUBJECT, PAYLOAD, ca],
                                {}, args.n))
        # The web-push crate over both sinks; its OpenSSL finds the run's CA through SSL_CERT_FILE.
        for transport in ("https", "http"):
            results.append({**run_peer("rust web-push 0.11", [WEB_PUSH_PEER, files[transport], pem, SUBJECT, PAYLOAD],
                                       {"SSL_CERT_FILE": str(ca)}, args.n), "transport": transport})
    return results


def report_round(n: int, results: list, floor: dict) -> dict:
    """Prints one round's table and JSON line; returns the line."""
    print(f"\nN = {n} subscriptions, 64 in flight, {os.cpu_count()} cores shared by sender and sink\n")
    print(f"{'sender':<22}{'transport':<11}{'ok':>9}{'seconds':>9}{'pushes/s':>10}{'CPU ms/push':>13}{'pushes/CPU-s':>14}{'peak RSS MB':>13}{'of floor':>10}")
    for r in results:
        r["pushes_per_s"] = r["ok"] / r["seconds"]
        r["cpu_ms_per_push"] = r["cpu_s"] * 1000 / r["pushes"]
        r["pushes_per_cpu_s"] = r["pushes"] / r["cpu_s"]
        print(f"{r['sender']:<22}{r['transport']:<11}{r['ok']:>9}{r['seconds']:>9.2f}{r['pushes_per_s']:>10.0f}"
              f"{r['cpu_ms_per_push']:>13.3f}{r['pushes_per_cpu_s']:>14.0f}{r['rss_mb']:>13.1f}"
              f"{r['pushes_per_cpu_s'] / floor['messages_per_cpu_s']:>10.0%}")
    print(f"{'encryption floor':<33}{'':>28}{floor['us_per_message'] / 1000:>13.3f}{floor['messages_per_cpu_s']:>14.0f}{'':>13}{1:>10.0%}")
    by = {(r["sender"].split()[0], r["transport"]): r for r in results}
    clarion, clarion_http = by[("clarion", "https")], by[("clarion", "http")]
    node, py = by.get(("node", "https")), by.get(("pywebpush", "https"))
    line = {
        "n": n,
        "clarion_pushes_per_s": round(clarion["pushes_per_s"]),
        "node_web_push_pushes_per_s": round(node["pushes_per_s"]) if node else None,
        "pywebpush_pushes_per_s": round(py["pushes_per_s"]) if py else None,
        "ratio_vs_node": round(clarion["pushes_per_s"] / node["pushes_per_s"], 1) if node else None,
        "cpu_ms_per_push": round(clarion["cpu_ms_per_push"], 4),
        "peak_rss_mb": round(clarion["rss_mb"], 1),
        "clarion_http_pushes_per_s": round(clarion_http["pushes_per_s"]),
        "http_ratio_vs_node": round(clarion_http["pushes_per_s"] / node["pushes_per_s"], 1) if node else None,
        "clarion_pushes_per_cpu_s": round(clarion["pushes_per_cpu_s"]),
        "clarion_http_pushes_per_cpu_s": round(clarion_http["pushes_per_cpu_s"]),
        "encryption_floor_per_cpu_s": round(floor["messages_per_cpu_s"]),
        "clarion_share_of_floor": round(clarion["pushes_per_cpu_s"] / floor["messages_per_cpu_s"], 3),
        "clarion_http_share_of_floor": round(clarion_http["pushes_per_cpu_s"] / floor["messages_per_cpu_s"], 3),
        "rust_web_push_pushes_per_s": {t: round(by[("rust", t)]["pushes_per_s"]) for t in ("https", "http") if ("rust", t) in by},
    }
    print()
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
