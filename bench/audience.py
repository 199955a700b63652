"""A send to a topic that a share of the audience chose, beside a send to everyone, from
the same SQLite database in one run: time (the broadcast's own started/finished times),
CPU and peak RSS of `clarion send`.

Run it with `./setup.sh bench --topic-share 0.1 [--n 100000]`. The topic is defined and
chosen by SQL on the imported database (every 1/share-th subscription id), which is what
`PUT /api/v1/topics/{name}` and the page's checkboxes store.
"""
import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path


def send(measured, binary: Path, data: Path, env: dict, n: int, label: str, extra: list) -> dict:
    summary, wall, cpu, rss = measured([binary, "send", "--title", "Clarion benchmark", "--body", "bench", "--json",
                                        "--data-dir", data, *extra], env)
    s = json.loads(summary)
    seconds = (datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds()
    return {"send": label, "stored": n, "matched": s["total"], "ok": s["delivered"], "seconds": seconds, "cpu_s": cpu,
            "rss_mb": rss, "process_seconds": wall}


def run(binary: Path, n: int, subscriptions: Path, host: str, ca: Path, share: float, work: Path, measured) -> list[dict]:
    data = work / "clarion-audience"
    env = {"CLARION_PUSH_HOSTS": host, "CLARION_EXTRA_CA_FILE": str(ca), "CLARION_VAPID_SUBJECT": "mailto:bench@clarion.dev",
           "CLARION_SEND_CONCURRENCY": "64", "RUST_LOG": "warn"}
    report, *_ = measured([binary, "import", subscriptions, "--data-dir", data], env)
    assert json.loads(report)["stored"] == n, report
    every = max(1, round(1 / share))
    db = sqlite3.connect(data / "clarion.db")
    with db:
        db.execute("INSERT INTO topics (name, label, description, is_default, created_at) VALUES ('bench', 'Bench', '', 0, '2026-01-01T00:00:00.000Z')")
        db.execute("INSERT INTO subscription_topics (subscription_id, topic) SELECT id, 'bench' FROM subscriptions WHERE id % ? = 0", (every,))
    db.close()
    results = [send(measured, binary, data, env, n, f"topic ({share:.0%} match)", ["--topic", "bench"]),
               send(measured, binary, data, env, n, "everyone", [])]
    print(f"\nN = {n} stored subscriptions, HTTPS sink, 64 in flight, SQLite, {os.cpu_count()} cores shared by sender and sink\n")
    print(f"{'send':<22}{'matched':>9}{'ok':>9}{'seconds':>9}{'pushes/s':>10}{'CPU s':>8}{'peak RSS MB':>13}")
    for r in results:
        r["pushes_per_s"] = r["ok"] / r["seconds"] if r["seconds"] else 0.0
        print(f"{r['send']:<22}{r['matched']:>9}{r['ok']:>9}{r['seconds']:>9.2f}{r['pushes_per_s']:>10.0f}{r['cpu_s']:>8.2f}{r['rss_mb']:>13.1f}")
    print()
    print(json.dumps({"audience": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in results]}))
    return results
