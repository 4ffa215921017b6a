"""The fixture endpoints (tests/fixtures/README.md) as a FastAPI app, with the middleware
added by ``app.add_middleware`` the way FastAPI users do."""

from __future__ import annotations

import asyncio
from typing import Any

from asgi_app import outside
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fixture_common import HEADERS, Counter, chunks, events
from idempo.asgi import IdempotencyMiddleware


def create_app(store: Any, counter: Counter, **options: Any) -> Any:
    app = FastAPI()
    app.add_middleware(
        IdempotencyMiddleware,
        store=store,
        **{"scope": lambda scope: dict(scope["headers"]).get(b"x-tenant", b"").decode("latin-1"), **options},
    )

    @app.post("/echo", status_code=201)
    async def echo(request: Request) -> Response:
        counter.hit()
        body = await request.body()
        return Response(body, status_code=201, media_type=request.headers.get("content-type", "application/octet-stream"))

    @app.post("/status/{code}")
    async def status(code: int) -> Response:
        counter.hit()
        if code in (204, 304):
            return Response(status_code=code)
        return PlainTextResponse(f"status:{code}", status_code=code)

    @app.post("/slow")
    async def slow(ms: int = 0) -> Response:
        counter.hit()
        await asyncio.sleep(ms / 1000)
        return PlainTextResponse(f"slept:{ms}")

    @app.post("/execution")
    async def execution(ms: int = 0) -> Response:
        n = counter.hit()
        await asyncio.sleep(ms / 1000)
        return PlainTextResponse(f"execution:{n}")

    @app.post("/fail-first")
    async def fail_first(ms: int = 0) -> Response:
        # 500 on the first execution since /reset (releasing the key), then executions.
        n = counter.hit()
        await asyncio.sleep(ms / 1000)
        if n == 1:
            return PlainTextResponse("failed", status_code=500)
        return PlainTextResponse(f"execution:{n}")

    @app.post("/large")
    async def large(bytes: int = 0) -> Response:
        counter.hit()
        return StreamingResponse(chunks(bytes), media_type="application/octet-stream")

    @app.post("/stream")
    async def stream() -> Response:
        counter.hit()
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/headers")
    async def headers() -> Response:
        counter.hit()
        response = Response(b"headers", status_code=201)
        response.raw_headers = [(b"content-length", b"7"), *((n.lower().encode(), v.encode()) for n, v in HEADERS)]
        return response

    @app.post("/raise")
    async def fail() -> Response:
        counter.hit()
        raise RuntimeError("the /raise handler fails on purpose")

    @app.get("/counter")
    async def count() -> dict[str, int]:
        return {"count": counter.get()}

    return outside(app, counter)
