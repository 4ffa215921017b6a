"""Starlette, wrapping the app directly (any ASGI app works the same way)."""

from __future__ import annotations

from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def create_order(request: Request) -> JSONResponse:
    order = await request.json()
    return JSONResponse({"order": order}, status_code=201)


inner = Starlette(routes=[Route("/orders", create_order, methods=["POST"])])
app = IdempotencyMiddleware(inner, store=MemoryStore(), fingerprint_headers=["content-type"])


def counters() -> dict[str, int]:
    return app.stats()
