"""A head without a body (204, 304, Content-Length: 0) is the whole response as far as the
client is concerned: uvicorn writes it out on `http.response.start`. The ASGI middleware
stores such a response before passing the head on, so a retry sent the moment the client
has it is a replay, not a 409 (B11, B14)."""

from __future__ import annotations

from typing import Any

import pytest
from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware

from idempo_tests.conftest import key

HEADS = {
    "204": (204, []),
    "304": (304, [(b"etag", b'"v1"')]),
    "200 with Content-Length 0": (200, [(b"content-length", b"0")]),
}


@pytest.mark.parametrize(("status", "headers"), HEADS.values(), ids=HEADS.keys())
async def test_a_bodiless_head_is_stored_before_it_is_sent(status: int, headers: list[tuple[bytes, bytes]]) -> None:
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    mw = IdempotencyMiddleware(app, store=MemoryStore())
    k = key("bodiless")
    scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"", "headers": [(b"idempotency-key", k.encode())]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call(send: Any) -> None:
        await mw(scope, receive, send)

    retried: list[dict[str, Any]] = []

    async def retry_on_head(message: dict[str, Any]) -> None:
        # What a client does the moment the server wrote this head: send the retry.
        if message["type"] == "http.response.start" and not retried:

            async def keep(m: dict[str, Any]) -> None:
                retried.append(m)

            await call(keep)

    await call(retry_on_head)
    head = retried[0]
    assert head["status"] == status, f"the retry got {head['status']}, not the replay"
    assert (b"idempotency-replayed", b"true") in head["headers"]
    assert runs == 1
