"""B13: the first chunk of a streamed response reaches the client while the app is still
producing the rest, through real servers; the replay is byte-identical."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

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
    gate = asyncio.Event()
    runs = 0

    async def stream(request: Request) -> StreamingResponse:
        nonlocal runs
        runs += 1

        async def events() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            await gate.wait()
            yield b"data: two\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/stream", stream, methods=["POST"])])
    app.add_middleware(AsgiMiddleware, store=MemoryStore())
    async with uvicorn_in_loop(app) as base:
        await first_chunk_then_rest(base, key("asgi-stream"), gate.set)
    assert runs == 1


async def test_b13_wsgi_first_chunk_arrives_before_the_app_finishes() -> None:
    gate = threading.Event()
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        nonlocal runs
        runs += 1
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events() -> Iterator[bytes]:
            yield b"data: one\n\n"
            gate.wait(10)
            yield b"data: two\n\n"

        return events()

    with waitress_in_thread(WsgiMiddleware(app, store=MemoryStore())) as base:
        await first_chunk_then_rest(base, key("wsgi-stream"), gate.set)
    assert runs == 1
