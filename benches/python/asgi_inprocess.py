"""The ASGI middleware's own cost per request, in-process: the app is called directly
(no server, no sockets) with the memory store, and the bare app's time is subtracted.

    make bench-python      (release build in .venv-bench)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware

N = 50_000
ROUNDS = 7

START = {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]}
BODY = {"type": "http.response.body", "body": b'{"id":"ch_1","amount":4200}'}


async def bare(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(START)
    await send(BODY)


def scope(method: str, key: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"api.example.com"), (b"content-type", b"application/json"), (b"content-length", b"15"),
               (b"user-agent", b"bench"), (b"accept", b"*/*")]  # fmt: skip
    if key is not None:
        headers.append((b"idempotency-key", key))
    return {"type": "http", "method": method, "path": "/charges", "raw_path": b"/charges", "query_string": b"", "headers": headers}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b'{"amount":4200}', "more_body": False}


async def send(message: Any) -> None:
    return None


async def per_request(app: Any, scopes: list[dict[str, Any]]) -> float:
    """Median over ROUNDS of the mean time per call, in microseconds."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for s in scopes:
            await app(s, receive, send)
        rounds.append((time.perf_counter_ns() - start) / len(scopes) / 1000)
    return statistics.median(rounds)


async def main() -> None:
    wrapped = IdempotencyMiddleware(bare, store=MemoryStore(max_entries=10_000_000, max_entries_per_scope=10_000_000, max_bytes=1 << 40))
    get = [scope("GET", None)] * N
    replay_scope = scope("POST", b"replayed-key")
    await wrapped(replay_scope, receive, send)
    replay = [replay_scope] * N
    fresh_rounds = [[scope("POST", f"k-{r}-{i}".encode()) for i in range(N)] for r in range(ROUNDS)]

    base_get = await per_request(bare, get)
    base_post = await per_request(bare, replay)
    passthrough = await per_request(wrapped, get) - base_get
    replayed = await per_request(wrapped, replay) - base_post
    first = []
    for scopes in fresh_rounds:
        start = time.perf_counter_ns()
        for s in scopes:
            await wrapped(s, receive, send)
        first.append((time.perf_counter_ns() - start) / len(scopes) / 1000 - base_post)
    executed = statistics.median(first)
    print(f"bare app: {base_get:.2f} µs (GET), {base_post:.2f} µs (POST)")
    print(f"middleware cost per request: passthrough {passthrough:.2f} µs (budget 2), replay {replayed:.2f} µs (budget 15), first execution {executed:.2f} µs (budget 25)")
    print(f"stats: {wrapped.stats()}")


asyncio.run(main())
