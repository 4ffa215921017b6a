"""While a Redis or PostgreSQL call is in flight, the asyncio event loop keeps running:
the store is made to stall (Redis `CLIENT PAUSE`, a PostgreSQL table lock held by another
session) and a ticking coroutine must keep ticking through the stall."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

import pytest
from idempo import PostgresStore, RedisStore
from idempo._native import Engine, Lease

from idempo_tests.conftest import env, key

STALL = 0.6


async def ticks_while(call: Callable[[], Awaitable[object]]) -> tuple[int, float, object]:
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    ticks = 0
    started = time.monotonic()
    result = await call()
    elapsed = time.monotonic() - started
    stop = True
    await task
    return ticks, elapsed, result


async def begin_with_new_key(engine: Engine) -> object:
    pending = engine.check_asgi("POST", b"/pay", b"", [(b"idempotency-key", key("loop").encode())])
    assert pending is not None and not isinstance(pending, tuple)
    decided = pending.begin(b"{}", asyncio.get_running_loop())
    assert isinstance(decided, asyncio.Future), "a networked store answers through an asyncio future"
    result = await decided
    assert isinstance(result, Lease)
    released = result.release(asyncio.get_running_loop())
    if released is not None:
        await released
    return result


def redis_command(url: str, *args: str) -> bytes:
    u = urlparse(url)
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379)) as s:
        s.sendall(f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
        return s.recv(1024)


async def test_loop_keeps_running_while_redis_is_paused() -> None:
    url = env("REDIS_URL", "Redis")
    engine = Engine(RedisStore(url))
    assert redis_command(url, "CLIENT", "PAUSE", str(int(STALL * 1000)), "ALL").startswith(b"+OK")
    ticks, elapsed, _ = await ticks_while(lambda: begin_with_new_key(engine))
    assert elapsed >= STALL * 0.8, f"the claim was not held up by the pause ({elapsed:.3f}s)"
    assert ticks >= 20, f"the event loop was blocked: {ticks} ticks in {elapsed:.3f}s"


async def test_loop_keeps_running_while_postgres_is_locked() -> None:
    url = env("DATABASE_URL", "PostgreSQL")
    engine = Engine(PostgresStore(url))
    # Blocking on purpose: a lookup before the loop is watched, and the locker runs beside it.
    which = ["bash", "-c", "command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1"]
    psql = subprocess.run(which, capture_output=True, text=True).stdout.strip()  # noqa: ASYNC221
    # One session: the lock is held from the moment psql prints `locked` until the sleep ends.
    steps = ["BEGIN", "LOCK TABLE idempo_records IN ACCESS EXCLUSIVE MODE", "SELECT 'locked'", f"SELECT pg_sleep({STALL})", "COMMIT"]
    locker = subprocess.Popen([psql, url, "-q", "-A", "-t", *(a for step in steps for a in ("-c", step))], stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        # A loaded machine can take a while to start psql: wait for the lock, not a guess.
        assert locker.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(locker.stdout.readline), timeout=20)
        assert line.strip() == "locked", f"psql said {line!r}"
        ticks, elapsed, _ = await ticks_while(lambda: begin_with_new_key(engine))
    finally:
        locker.wait(timeout=20)
    assert elapsed >= STALL * 0.5, f"the claim was not held up by the lock ({elapsed:.3f}s)"
    assert ticks >= 15, f"the event loop was blocked: {ticks} ticks in {elapsed:.3f}s"


@pytest.mark.parametrize("kind", ["redis"])
async def test_wsgi_calls_release_the_gil(kind: str) -> None:
    """begin without an event loop waits with the GIL released: another Python thread keeps running."""
    import threading

    url = env("REDIS_URL", "Redis")
    engine = Engine(RedisStore(url))
    counted = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1
            time.sleep(0.001)

    spinner = threading.Thread(target=spin)
    redis_command(url, "CLIENT", "PAUSE", str(int(STALL * 1000)), "ALL")
    spinner.start()
    pending = engine.check_wsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/pay", "HTTP_IDEMPOTENCY_KEY": key("gil")})
    assert pending is not None and not isinstance(pending, tuple)
    lease = pending.begin(b"{}")
    stop.set()
    spinner.join()
    assert isinstance(lease, Lease)
    lease.release()
    assert counted >= 50, f"the other thread was starved: {counted} iterations"
