"""Small apps shared by several test files."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


class GatedStream:
    """Starlette behind the ASGI middleware: `POST /stream` sends one event, then waits
    for `gate` before the second, so a test can act while the response is half sent.
    `runs` counts the handler's executions."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.app = Starlette(routes=[Route("/stream", self._stream, methods=["POST"])])
        self.app.add_middleware(IdempotencyMiddleware, store=MemoryStore())

    async def _stream(self, request: Request) -> StreamingResponse:
        self.runs += 1

        async def events() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            await self.gate.wait()
            yield b"data: two\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class GatedWsgiStream:
    """The same behind the WSGI middleware: one event, then `rest` once `gate` is set,
    `pause` seconds apart. `app` is the middleware; `runs` counts executions."""

    def __init__(self, rest: list[bytes], pause: float = 0) -> None:
        self.runs = 0
        self.gate = threading.Event()
        self.rest, self.pause = rest, pause
        self.app = WsgiMiddleware(self._app, store=MemoryStore())

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        self.runs += 1
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return self._events()

    def _events(self) -> Iterator[bytes]:
        yield b"data: one\n\n"
        self.gate.wait(10)
        for chunk in self.rest:
            time.sleep(self.pause)
            yield chunk
