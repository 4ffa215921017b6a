"""The fixture apps registered in tests/fixtures/apps.json start from the repository root
with their command, configured only by the fixture variables, and answer the endpoints of
tests/fixtures/README.md."""

from __future__ import annotations

import json

import httpx
import pytest

from idempo_tests.conftest import env, key
from idempo_tests.servers import ROOT, fixture_process

APPS = json.loads((ROOT / "tests" / "fixtures" / "apps.json").read_text())


@pytest.mark.parametrize("name", ["asgi", "wsgi"])
@pytest.mark.parametrize("store", ["memory", "redis", "postgres"])
async def test_fixture_app_serves_the_contract(name: str, store: str) -> None:
    url = {"memory": "memory", "redis": "REDIS_URL", "postgres": "DATABASE_URL"}[store]
    store_url = url if url == "memory" else env(url, store)
    command = [str(ROOT / APPS[name]["command"][0]), *APPS[name]["command"][1:]]
    with fixture_process(lambda _port: command, {"IDEMPO_STORE": store_url, "IDEMPO_REQUIRED": "1"}) as base:
        # No keep-alive: uvicorn closes a connection whose app raised.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
            assert (await client.post("/reset")).status_code == 204
            k = key(name)
            first = await client.post("/echo", content=b"hello", headers={"Idempotency-Key": k})
            assert (first.status_code, first.content) == (201, b"hello")
            again = await client.post("/echo", content=b"hello", headers={"Idempotency-Key": k})
            assert again.headers["idempotency-replayed"] == "true"
            assert (await client.post("/echo", content=b"x")).json()["code"] == "missing-key"
            status = await client.post("/status/418", headers={"Idempotency-Key": key()})
            assert (status.status_code, status.text) == (418, "status:418")
            assert (await client.post("/slow?ms=10", headers={"Idempotency-Key": key()})).text == "slept:10"
            assert len((await client.post("/large?bytes=50000", headers={"Idempotency-Key": key()})).content) == 50000
            stream = await client.post("/stream", headers={"Idempotency-Key": key()})
            assert stream.text.count("data: event") == 5
            k2 = key("raise")
            assert (await client.post("/raise", headers={"Idempotency-Key": k2})).status_code == 500
            assert (await client.post("/raise", headers={"Idempotency-Key": k2})).status_code == 500
            assert (await client.get("/counter")).json() == {"count": 7}
            assert (await client.post("/reset")).status_code == 204
            assert (await client.get("/counter")).json() == {"count": 0}
