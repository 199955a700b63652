"""Two builds of Clarion side by side: `clarion send` of N pushes, the builds alternated.

    end2end/.venv/bin/python bench/compare.py --rounds 3 BEFORE_BINARY AFTER_BINARY

A change to the sender is often smaller than this machine's drift from one hour to the
next, so `bench/run.py` figures from two runs cannot tell it. This runs both builds in one
session, against the same two sinks (`clarion push-service --sink` over HTTPS/HTTP2 and
over HTTP/1.1, served by the last binary given) and the same N subscriptions, round after
round with the builds alternated, and prints each build's median and range of pushes per
CPU-second and of pushes per second, per transport. CPU time is the sender's whole process
(`wait4` rusage), as in `bench/run.py`, whose helpers it uses.

Build the "before" binary from another checkout, e.g.
`git worktree add /tmp/before REV && cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target
cargo build --release --features ssr --bin clarion`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="subscriptions (20,000 by default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every build over both transports")
    parser.add_argument("binaries", nargs="+", type=Path, help="clarion binaries to compare")
    args = parser.parse_args()
    for binary in args.binaries:
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not an executable")

    work = Path(tempfile.mkdtemp(prefix="clarion-compare-"))
    ca, crt, key = bench.make_certificates(work)
    tls_port, http_port = bench.free_port(), bench.free_port()
    sink = args.binaries[-1]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": {**os.environ, "RUST_LOG": "warn"}}
    sinks = [
        subprocess.Popen([sink, "push-service", "--sink", "--addr", f"127.0.0.1:{tls_port}", "--tls-cert", crt, "--tls-key", key], **quiet),
        subprocess.Popen([sink, "push-service", "--sink", "--addr", f"127.0.0.1:{http_port}"], **quiet),
    ]
    rates: dict[tuple[int, str], list[float]] = {}
    speeds: dict[tuple[int, str], list[float]] = {}
    try:
        bench.wait_for_port(tls_port)
        bench.wait_for_port(http_port)
        ports = {"https": tls_port, "http": http_port}
        files = bench.write_subscriptions(args.n, {label: f"{label}://127.0.0.1:{port}" for label, port in ports.items()}, work)
        for round_no in range(1, args.rounds + 1):
            for index, binary in enumerate(args.binaries):
                bench.BIN = binary
                for label, port in ports.items():
                    r = bench.run_clarion(args.n, files[label], f"127.0.0.1:{port}", ca, work / f"round-{round_no}-{index}", label)
                    if r["ok"] != args.n:
                        sys.exit(f"{binary} delivered {r['ok']} of {args.n} over {label}")
                    rate, speed = args.n / r["cpu_s"], args.n / r["seconds"]
                    rates.setdefault((index, label), []).append(rate)
                    speeds.setdefault((index, label), []).append(speed)
                    print(f"round {round_no}, build {index + 1}, {label}: {rate:,.0f} pushes per CPU-s, {speed:,.0f} pushes/s",
                          file=sys.stderr)
    finally:
        for process in sinks:
            process.terminate()
            process.wait()
    for title, table in (("pushes per CPU-second", rates), ("pushes per second", speeds)):
        print(f"\nN = {args.n}, {args.rounds} rounds; {title}, median (lowest to highest)\n")
        for (index, label), values in sorted(table.items()):
            print(f"build {index + 1} {label:<6} {statistics.median(values):>8,.0f}  ({min(values):,.0f} to {max(values):,.0f})  {args.binaries[index]}")


if __name__ == "__main__":
    main()
