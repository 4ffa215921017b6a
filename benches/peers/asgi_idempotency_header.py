"""The peer app for `make bench`: the ASGI fixture's /echo, /counter and /reset endpoints
on Starlette behind asgi-idempotency-header (installed by benches/peers/install.sh).

    IDEMPO_STORE=redis://… uvicorn --app-dir benches/peers asgi_idempotency_header:app
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

counter = 0


async def echo(request: Request) -> Response:
    global counter
    counter += 1
    body = await request.body()
    return Response(body, status_code=201, media_type=request.headers.get("content-type", "application/octet-stream"))


async def count(request: Request) -> Response:
    return JSONResponse({"count": counter})


async def reset(request: Request) -> Response:
    global counter
    counter = 0
    return Response(status_code=204)


def backend(url: str) -> Any:
    if url == "memory":
        from idempotency_header_middleware.backends.memory import MemoryBackend

        return MemoryBackend()
    if url.startswith("redis://"):
        from idempotency_header_middleware.backends.redis import RedisBackend
        from redis.asyncio import Redis

        return RedisBackend(Redis.from_url(url))
    raise SystemExit(f"IDEMPO_STORE={url!r}: the peer supports memory and redis:// only")


app = Starlette(
    routes=[
        Route("/echo", echo, methods=["POST"]),
        Route("/counter", count, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
    ]
)
if os.environ.get("IDEMPO_BARE") != "1":
    from idempotency_header_middleware import IdempotencyHeaderMiddleware

    app.add_middleware(IdempotencyHeaderMiddleware, backend=backend(os.environ.get("IDEMPO_STORE", "memory")))
