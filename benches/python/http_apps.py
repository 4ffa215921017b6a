"""Two ASGI apps for the uvicorn load test: the bare app and the same app behind the
middleware (memory store). A GET passes through; a keyed POST replays."""

from __future__ import annotations

from typing import Any

from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware


async def bare(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


wrapped = IdempotencyMiddleware(bare, store=MemoryStore())
