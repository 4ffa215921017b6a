"""B20: a duplicate that prefers to wait gets its in-flight original's response instead of
a 409, through real servers (uvicorn for ASGI, werkzeug's threaded server for WSGI) on
every store; a waiting ASGI client that leaves gives its place back at once."""

from __future__ import annotations

import asyncio

import asgi_app
import httpx
import pytest
from fixture_common import Counter

from idempo_tests.conftest import key, make_store, middleware_of, serving
from idempo_tests.servers import uvicorn_in_loop


def keyed(k: str, wait: int | None = None) -> dict[str, str]:
    return {"Idempotency-Key": k} | ({"Prefer": f"wait={wait}"} if wait is not None else {})


@pytest.mark.parametrize("store_kind", ["memory", "redis", "postgres"])
@pytest.mark.parametrize("framework", ["starlette", "flask"])
async def test_b20_duplicates_that_prefer_to_wait_get_the_replay(framework: str, store_kind: str) -> None:
    async with serving(framework, store_kind) as (base, app), httpx.AsyncClient(base_url=base, timeout=20) as client:
        k = key("wait")
        first = asyncio.create_task(client.post("/slow?ms=800", headers=keyed(k)))
        await asyncio.sleep(0.2)
        dups = await asyncio.gather(*(client.post("/slow?ms=800", headers=keyed(k, 5)) for _ in range(20)))
        original = await first
        count = (await client.get("/counter")).json()["count"]
    assert original.status_code == 200 and "idempotency-replayed" not in original.headers
    for r in dups:
        assert r.status_code == 200, r.text
        assert r.headers["idempotency-replayed"] == "true"
        assert r.headers["preference-applied"] == "wait=5"
        assert r.content == original.content
    assert count == 1
    stats = middleware_of(app).engine.stats()
    assert (stats["waited"], stats["wait_timeouts"], stats["conflicts"]) == (20, 0, 0)


async def test_b20_a_wait_that_runs_out_is_a_409_with_retry_after() -> None:
    async with serving("starlette", "memory") as (base, app), httpx.AsyncClient(base_url=base, timeout=20) as client:
        k = key("timeout")
        first = asyncio.create_task(client.post("/slow?ms=2500", headers=keyed(k)))
        await asyncio.sleep(0.2)
        dup = await client.post("/slow?ms=2500", headers=keyed(k, 1))
        assert not first.done(), "answered before the original finished"
        await first
    assert dup.status_code == 409 and dup.json()["code"] == "key-in-use"
    assert dup.headers["retry-after"] == "1"
    assert dup.headers["preference-applied"] == "wait=1"
    assert middleware_of(app).engine.stats()["wait_timeouts"] == 1


async def leave_while_waiting(base: str, k: str) -> None:
    """Send a keyed request that prefers to wait, then close the socket while it waits."""
    host, port = base.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    request = f"POST /slow?ms=1500 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: {k}\r\nPrefer: wait=5\r\nContent-Length: 0\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.transport.abort()


@pytest.mark.parametrize("store_kind", ["memory", "redis", "postgres"])
async def test_b20_asgi_a_waiter_whose_client_leaves_frees_its_place(store_kind: str) -> None:
    app = asgi_app.create_app(await asyncio.to_thread(make_store, store_kind), Counter(), max_waiters=1)
    k = key("max-waiters")
    async with uvicorn_in_loop(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as client:
        first = asyncio.create_task(client.post("/slow?ms=1500", headers=keyed(k)))
        await asyncio.sleep(0.2)
        await leave_while_waiting(base, k)
        await asyncio.sleep(0.1)
        # The place the leaver held is free: this one waits...
        waiter = asyncio.create_task(client.post("/slow?ms=1500", headers=keyed(k, 5)))
        await asyncio.sleep(0.2)
        # ...and holds the only place, so the next one is refused at once.
        refused = await client.post("/slow?ms=1500", headers=keyed(k, 5))
        assert not first.done(), "refused while the original still ran"
        replay = await waiter
        await first
    assert refused.status_code == 409 and "preference-applied" not in refused.headers
    assert replay.status_code == 200 and replay.headers["idempotency-replayed"] == "true"
    stats = middleware_of(app).engine.stats()
    assert (stats["waited"], stats["conflicts"]) == (2, 1)
