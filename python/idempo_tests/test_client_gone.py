"""B11: a client that goes away never gives its key back. The app's work stands, so the
retry replays it (whole, or without its body where the stream was cut: B12); only an
exception from the app or its body releases. Through real servers (uvicorn, waitress)
where a socket can be closed, and a bare ASGI call for what only a server can do
(cancel the app, fail a send)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from idempo_tests.apps import GatedStream, GatedWsgiStream
from idempo_tests.conftest import key
from idempo_tests.servers import uvicorn_in_loop, waitress_in_thread


def raw_post(path: str, k: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nIdempotency-Key: {k}\r\nContent-Length: 1\r\n\r\nx".encode()


async def leave(base: str, path: str, k: str, after_head: bool) -> None:
    """Send a keyed request and close the socket: at once, or once the head arrived."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw_post(path, k))
    await writer.drain()
    if after_head:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
    writer.transport.abort()


async def test_asgi_many_clients_gone_mid_handler_each_get_the_one_execution() -> None:
    """200 clients leave while their handlers wait; each handler finishes, and each retry
    (409 while it runs) replays its own response: nothing runs twice."""
    n, started, gate = 200, 0, asyncio.Event()
    runs: dict[str, int] = {}

    async def pay(request: Request) -> Response:
        nonlocal started
        k = request.headers["idempotency-key"]
        runs[k] = runs.get(k, 0) + 1
        started += 1
        await gate.wait()
        return PlainTextResponse(f"paid:{k}")

    app = Starlette(routes=[Route("/pay", pay, methods=["POST"])])
    app.add_middleware(AsgiMiddleware, store=MemoryStore())
    keys = [key(f"gone-{i}") for i in range(n)]
    async with uvicorn_in_loop(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as client:
        await asyncio.gather(*(leave(base, "/pay", k, after_head=False) for k in keys))
        while started < n:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the server has seen every socket close
        early = await client.post("/pay", content=b"x", headers={"Idempotency-Key": keys[0]})
        assert early.status_code == 409, "the key was released while its handler ran"
        gate.set()
        deadline = time.monotonic() + 10
        for k in keys:
            while (r := await client.post("/pay", content=b"x", headers={"Idempotency-Key": k})).status_code == 409:
                assert time.monotonic() < deadline, "the key stayed in flight"
                await asyncio.sleep(0.02)
            assert (r.status_code, r.text, r.headers.get("idempotency-replayed")) == (200, f"paid:{k}", "true")
    assert runs == dict.fromkeys(keys, 1)


async def test_asgi_a_stream_cut_when_the_client_left_is_stored_without_its_body() -> None:
    """Starlette stops a streaming body once the client is gone: the rest cannot be had,
    so the record keeps the status and headers (B12), and the retry does not run again."""
    stream = GatedStream()
    k = key("stream-gone")
    async with uvicorn_in_loop(stream.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        await leave(base, "/stream", k, after_head=True)
        deadline = time.monotonic() + 5
        while (r := await client.post("/stream", content=b"x", headers={"Idempotency-Key": k})).status_code == 409:
            assert time.monotonic() < deadline, "the key stayed in flight after the stream was cut"
            await asyncio.sleep(0.02)
        stream.gate.set()
    assert (r.status_code, r.content, r.headers.get("idempotency-replay")) == (200, b"", "omitted")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert stream.runs == 1


async def test_wsgi_a_client_gone_mid_stream_leaves_the_rest_recorded() -> None:
    """waitress stops iterating once the client is gone and closes the iterable: the rest
    is read for the record, and the retry replays the whole body."""
    # Enough writes, spaced, for the server to notice the closed socket.
    rest = [f"data: {i}\n\n".encode() for i in range(50)]
    stream = GatedWsgiStream(rest, pause=0.01)
    k = key("wsgi-stream-gone")
    with waitress_in_thread(stream.app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await leave(base, "/stream", k, after_head=True)
            await asyncio.sleep(0.1)
            stream.gate.set()
            deadline = time.monotonic() + 5
            while (r := await client.post("/stream", content=b"x", headers={"Idempotency-Key": k})).status_code == 409:
                assert time.monotonic() < deadline, "the key stayed in flight"
                await asyncio.sleep(0.02)
    expected = b"data: one\n\n" + b"".join(rest)
    assert (r.status_code, r.content, r.headers.get("idempotency-replayed")) == (200, expected, "true")
    assert stream.runs == 1


def scope_for(k: str) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/pay", "raw_path": b"/pay", "query_string": b"", "headers": [(b"idempotency-key", k.encode())]}


async def call(mw: Any, k: str) -> list[dict[str, Any]]:
    """One request through the middleware, as a well-behaved server makes it."""
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(scope_for(k), receive, send)
    return sent


async def test_asgi_an_app_cancelled_by_its_server_keeps_the_key_until_max_lease() -> None:
    """A server may cancel the app when the client leaves: what the app did before stands,
    so the key stays claimed (a retry gets 409) until max_lease, then it is released."""
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(10)

    mw = AsgiMiddleware(app, store=MemoryStore(), lease_ttl=0.3, max_lease=1.2)
    k = key("cancelled")
    task = asyncio.create_task(call(mw, k))
    while runs == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)  # past lease_ttl: the claim is being renewed
    retry = asyncio.create_task(call(mw, k))
    await asyncio.sleep(0.05)
    assert retry.done() and retry.result()[0]["status"] == 409 and runs == 1
    await asyncio.sleep(1.2)  # past max_lease: released
    again = asyncio.create_task(call(mw, k))
    while runs < 2:
        await asyncio.sleep(0.01)
    again.cancel()


async def test_asgi_a_send_that_fails_once_the_client_left_stores_the_head() -> None:
    """Servers of ASGI 2.4 raise OSError from `send` once the client is gone; the app's
    response is stored without its body, never released."""
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"rest", "more_body": False})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def gone_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the client is gone")

    mw = AsgiMiddleware(app, store=MemoryStore())
    k = key("send-fails")
    with pytest.raises(OSError):
        await mw(scope_for(k), receive, gone_send)
    replay = await call(mw, k)
    assert replay[0]["status"] == 201 and runs == 1
    assert (b"idempotency-replay", b"omitted") in replay[0]["headers"]


async def test_asgi_an_app_that_returns_unfinished_with_the_client_there_releases() -> None:
    """Not finishing the response, with nobody gone, is the app's own error: released."""
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})

    mw = AsgiMiddleware(app, store=MemoryStore())
    k = key("unfinished")
    await call(mw, k)
    await call(mw, k)
    assert runs == 2
