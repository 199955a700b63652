"""Peer: pywebpush 2.5, its async API (webpush_async with one aiohttp session), used as its
README shows (a vapid_claims dict per call), with 64 sends in flight.

    python pywebpush_peer.py SUBSCRIPTIONS.jsonl VAPID_PRIVATE_PEM_FILE SUBJECT PAYLOAD CA_FILE

prints {"pushes", "ok", "failed", "seconds"}.
"""
import asyncio
import json
import ssl
import sys
import time

import aiohttp
from py_vapid import Vapid02
from pywebpush import webpush_async

IN_FLIGHT = 64


async def main(path, key_file, subject, payload, ca_file):
    with open(path) as f:
        subscriptions = [json.loads(line) for line in f if line.strip()]
    vapid = Vapid02.from_file(key_file)
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    connector = aiohttp.TCPConnector(ssl=context, limit=IN_FLIGHT) if context else aiohttp.TCPConnector(limit=IN_FLIGHT)
    counts = {"ok": 0, "failed": 0}
    queue = iter(subscriptions)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            for subscription in queue:
                try:
                    await webpush_async(subscription, payload, vapid_private_key=vapid,
                                        vapid_claims={"sub": subject}, ttl=60, aiohttp_session=session)
                    counts["ok"] += 1
                except Exception as error:  # noqa: BLE001 - a peer's failure is counted, not fatal
                    counts["failed"] += 1
                    if counts["failed"] <= 3:
                        print(error, file=sys.stderr)
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    seconds = time.perf_counter() - started
    print(json.dumps({"pushes": len(subscriptions), **counts, "seconds": seconds}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) > 5 else None))
