"""B20 across processes and languages, with the wake-up latency that shows waiters are
woken by the store's events, not by polling.

- wake-up cell (one integration on one durable store): an original `/slow?ms=2500` and
  199 duplicates with `Prefer: wait=5` sent 0.3 s after it, each on its own raw
  connection (a light client, so the client's own cost does not hide the server's). Every
  duplicate must get the replay; the time from the original's answer to each duplicate's
  is the wake-up latency, reported as p50/p99/max. Without events the duplicates would
  re-read at about 0.55 s, 1.05 s, 2.05 s and 4.05 s (waiting.rs: 250 ms doubling), so a
  polled answer comes some 1 550 ms after the original's: the Rust fixture's p99 budget of
  50 ms (WAKE_P99_MS) can only be met by events. The other integrations answer 199 replays on
  one event loop or a thread pool, which takes longer than the wake-up itself: their
  figures are printed, with a sanity bound.
- mixed-fleet waiting (every integration on one durable store): the original runs in one
  integration, duplicates wait in each of the others (separate processes, other
  languages) and are woken by its completion: with the same schedule, their p99 must stay
  below FLEET_WOKEN_MS, which only the store's events allow.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from apps import Failure, Passed, fleet_of, serving

# The p99 wake-up budget of the Rust fixture (issue 16): 50 ms on this machine; for the
# others, whose own cost of answering 199 replays on one event loop or thread pool comes
# on top, a bound (they measured 1-45 ms p99 on this machine, debug builds).
WAKE_P99_MS = {"rust": 50.0}
WOKEN_MS = 150.0
# Waiters in other processes (and languages) hear of the completion only from the store:
# polled, they would answer some 1 550 ms after the original.
FLEET_WOKEN_MS = 250.0
# The original's path (its duplicates take the same): long enough that a duplicate delayed
# by a retransmitted SYN (1 s on Linux) still finds it running. With the original at
# 1.2 s a CI run once saw 32 of 199 duplicates arrive after it (plain replays).
SLOW = "/slow?ms=2500"
# A WSGI waiter holds one of the server's threads (gunicorn --threads 32, one for the
# original): more duplicates than that queue in the server until the original is done,
# and then find its record without waiting.
WAITERS = {"wsgi": 30}


async def post(port: int, path: str, key: str, wait: int | None = None) -> tuple[float, int, dict[str, str], bytes]:
    """One POST on its own connection, read to the end: (when it ended, status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    prefer = f"Prefer: wait={wait}\r\n" if wait is not None else ""
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nIdempotency-Key: {key}\r\n{prefer}Content-Length: 4\r\n\r\nsame"
    writer.write(head.encode())
    data = await reader.read()
    ended = time.monotonic()
    writer.close()
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return ended, int(lines[0].split()[1]), headers, body


def dechunk(data: bytes) -> bytes:
    out, at = b"", 0
    while True:
        eol = data.index(b"\r\n", at)
        size = int(data[at:eol].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[eol + 2 : eol + 2 + size]
        at = eol + 2 + size + 2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def latencies(original_ended: float, waiters: list[tuple[float, int, dict[str, str], bytes]], body: bytes) -> list[float]:
    """Each waiter's answer after the original's, in ms. Failure unless every one is a
    replay of it, and nearly all waited (a connection the server accepted only after the
    original was done, a SYN retransmitted after a second, gets a plain replay)."""
    out = []
    for ended, status, headers, got in waiters:
        if status != 200 or headers.get("idempotency-replayed") != "true":
            raise Failure(f"a waiter got {status} {got[:80]!r} instead of the replay")
        if got != body:
            raise Failure(f"a waiter's replay {got[:40]!r} differs from the original {body[:40]!r}")
        if headers.get("preference-applied") == "wait=5":
            out.append(max(0.0, (ended - original_ended) * 1000))
    if len(out) < 0.95 * len(waiters):
        raise Failure(f"only {len(out)} of {len(waiters)} duplicates waited (Preference-Applied: wait=5)")
    return out


def figures(ms: list[float]) -> str:
    return f"p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"


async def run_wake_latency(app: str, command: list[str], store: str) -> str | None:
    async with serving(command, store) as (_, base):
        port = int(base.rsplit(":", 1)[1])
        key = f"wake-{uuid.uuid4().hex}"
        first = asyncio.create_task(post(port, SLOW, key))
        await asyncio.sleep(0.3)
        n = WAITERS.get(app, 199)
        waiters = await asyncio.gather(*(post(port, SLOW, key, wait=5) for _ in range(n)))
        ended, status, headers, body = await first
        if status != 200 or "idempotency-replayed" in headers:
            raise Failure(f"the original answered {status} {body[:80]!r}")
        ms = latencies(ended, waiters, body)
    p99 = percentile(ms, 0.99)
    budget = WAKE_P99_MS.get(app, WOKEN_MS)
    if p99 > budget:
        return f"wake-up p99 {p99:.1f} ms over {budget:.0f} ms ({figures(ms)})"
    return Passed(f"{len(ms)} woken: {figures(ms)}")


async def run_fleet_wait(apps: dict[str, Any], names: list[str], store: str) -> dict[str, str | None]:
    """One cell per source: its original, 10 waiters in each other integration."""
    results: dict[str, str | None] = {}
    try:
        async with fleet_of(apps, names, store) as ports:
            for source in names:
                key = f"fleet-wait-{uuid.uuid4().hex}"
                targets = [t for t in names if t != source]
                first = asyncio.create_task(post(ports[source], SLOW, key))
                await asyncio.sleep(0.3)
                waiters = await asyncio.gather(*(post(ports[t], SLOW, key, wait=5) for t in targets for _ in range(10)))
                ended, status, headers, body = await first
                cell = f"{source}->{','.join(targets)}"
                try:
                    if status != 200 or "idempotency-replayed" in headers:
                        raise Failure(f"the original through {source} answered {status} {body[:80]!r}")
                    ms = latencies(ended, list(waiters), body)
                    if percentile(ms, 0.99) > FLEET_WOKEN_MS:
                        raise Failure(f"not woken by the store's events: {figures(ms)} (polled answers come ~1 550 ms late)")
                    results[cell] = Passed(f"{len(ms)} woken across processes: {figures(ms)}")
                except Failure as why:
                    results[cell] = str(why)
    except Failure as why:
        return {f"{a}->*": str(why) for a in names}
    return results
