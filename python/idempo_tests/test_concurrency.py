"""B8: of many simultaneous identical requests exactly one runs the app, through real
servers: uvicorn (ASGI), waitress (threaded WSGI), and two gunicorn worker processes
forked from a `--preload` master sharing Redis."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import asgi_app
import httpx
import pytest
import wsgi_app
from fixture_common import Counter

from idempo_tests.conftest import env, key, make_store
from idempo_tests.servers import fixture_process, gunicorn, uvicorn_in_loop, waitress_in_thread

N = 200


async def fire(base: str, k: str, n: int = N) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(client.post("/slow?ms=300", content=b"same", headers={"Idempotency-Key": k}) for _ in range(n))))


def check_outcome(responses: list[httpx.Response]) -> None:
    originals = [r for r in responses if r.status_code == 200 and "idempotency-replayed" not in r.headers]
    replays = [r for r in responses if r.status_code == 200 and "idempotency-replayed" in r.headers]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1, [r.status_code for r in responses]
    assert len(originals) + len(replays) + len(conflicts) == len(responses), {r.status_code for r in responses}
    assert all(r.content == originals[0].content for r in replays)
    assert all(r.json()["code"] == "key-in-use" for r in conflicts)


@pytest.mark.parametrize("store_kind", ["memory", "redis", "postgres"])
async def test_b8_uvicorn_two_hundred_concurrent_duplicates_run_once(store_kind: str) -> None:
    counter = Counter()
    app = asgi_app.create_app(make_store(store_kind), counter)
    async with uvicorn_in_loop(app) as base:
        check_outcome(await fire(base, key("asgi")))
    assert counter.get() == 1


@pytest.mark.parametrize("store_kind", ["memory", "redis", "postgres"])
async def test_b8_threaded_wsgi_two_hundred_concurrent_duplicates_run_once(store_kind: str) -> None:
    counter = Counter()
    app = wsgi_app.create_app(make_store(store_kind), counter)
    with waitress_in_thread(app, threads=32) as base:
        check_outcome(await fire(base, key("wsgi")))
    assert counter.get() == 1


async def test_b8_two_gunicorn_workers_preloaded_on_redis_run_once() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counter_file = Path(tmp) / "count"
        env_vars = {"IDEMPO_STORE": env("REDIS_URL", "Redis"), "IDEMPO_COUNTER_FILE": str(counter_file)}
        # --preload: the store is made in the master, before the workers are forked.
        def argv(port: int) -> list[str]:
            return gunicorn(port, "--preload", "-w", "2", "--threads", "32", "--backlog", "1024")

        with fixture_process(argv, env_vars) as base:
            responses = await fire(base, key("gunicorn"))
            check_outcome(responses)
            pids = {r.headers["x-pid"] for r in responses}
            assert len(pids) == 2, f"both worker processes answered: {pids}"
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/counter")).json() == {"count": 1}
        assert counter_file.read_text() == "1"
