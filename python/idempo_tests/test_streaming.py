"""B13: the first chunk of a streamed response reaches the client while the app is still
producing the rest, through real servers; the replay is byte-identical."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from idempo_tests.apps import GatedStream, GatedWsgiStream
from idempo_tests.conftest import key
from idempo_tests.servers import uvicorn_in_loop, waitress_in_thread


async def first_chunk_then_rest(base: str, k: str, release: Any) -> bytes:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream("POST", "/stream", headers={"Idempotency-Key": k}) as r:
            chunks = r.aiter_raw()
            first = await asyncio.wait_for(chunks.__anext__(), timeout=5)
            assert first == b"data: one\n\n", first
            # The app is blocked before its second chunk: the key is still in flight.
            dup = await client.post("/stream", headers={"Idempotency-Key": k})
            assert dup.status_code == 409
            release()
            rest = b"".join([c async for c in chunks])
        whole = first + rest
        assert whole == b"data: one\n\ndata: two\n\n"
        replay = await client.post("/stream", headers={"Idempotency-Key": k})
        assert replay.headers["idempotency-replayed"] == "true"
        assert replay.content == whole
        return whole


async def test_b13_asgi_first_chunk_arrives_before_the_app_finishes() -> None:
    stream = GatedStream()
    async with uvicorn_in_loop(stream.app) as base:
        await first_chunk_then_rest(base, key("asgi-stream"), stream.gate.set)
    assert stream.runs == 1


async def test_b13_wsgi_first_chunk_arrives_before_the_app_finishes() -> None:
    stream = GatedWsgiStream([b"data: two\n\n"])
    with waitress_in_thread(stream.app) as base:
        await first_chunk_then_rest(base, key("wsgi-stream"), stream.gate.set)
    assert stream.runs == 1
