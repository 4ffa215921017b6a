"""Pure ASGI idempotency middleware, for Starlette, FastAPI and any ASGI 3 application.

    app.add_middleware(IdempotencyMiddleware, store=RedisStore(url), required=True)

For a covered request with a key, the body is buffered (up to ``max_request_body``) and
replayed to the app unchanged; the response streams to the client message by message while
the engine keeps a copy, which is stored before the last body message is sent, so a client
retrying at once finds the replay. An exception in the app releases the key and propagates;
a client that goes away never does (see ``_Recorder``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from idempo._native import DRAIN_LIMIT, Lease
from idempo._options import Configured

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "IdempotencyMiddleware", "Receive", "Scope", "Send"]

_TOO_LARGE = object()
_DISCONNECTED = object()
_Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class IdempotencyMiddleware(Configured[ASGIApp, Scope]):
    """Idempotency-Key handling for an ASGI app. ``scope``, when given, maps the ASGI scope
    to the namespace keys live in (the authenticated caller). Every other option is the
    engine's (see the README); durations are seconds."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        checked = self.engine.check_asgi(scope["method"], raw_path, scope.get("query_string", b""), scope["headers"])
        if checked is None:
            await self.app(scope, receive, send)
            return
        if isinstance(checked, tuple):
            await _refuse(receive, send, checked)
            return
        pending = checked
        self.place(pending, scope)
        body = await _read_body(receive, pending.body_limit)
        if body is _DISCONNECTED:
            return  # the client is gone and nothing was claimed
        if body is _TOO_LARGE:
            await _refuse(receive, send, pending.too_large())
            return
        assert isinstance(body, bytes)
        loop = asyncio.get_running_loop()
        may_wait = pending.may_wait
        decided = pending.begin(body, loop)
        if isinstance(decided, asyncio.Future):
            if may_wait:
                decided, receive = await _unless_gone(decided, pending, receive)
                if decided is _DISCONNECTED:
                    return  # the client left while waiting for the original (B20)
            else:
                decided = await decided
        if decided is None:  # the store failed and on_store_error is fail_open
            await self.app(scope, _replaying(body, receive), send)
        elif isinstance(decided, tuple):
            await _respond(send, decided)
        else:
            await _Recorder(decided, send, loop, self).run(self.app, scope, _replaying(body, receive))


async def _unless_gone(decided: asyncio.Future[Any], pending: Any, receive: Receive) -> tuple[Any, Receive]:
    """Await a claim that may wait for an in-flight duplicate (B20) while listening for the
    client leaving: then the wait stops and frees its place (``_DISCONNECTED``). A message
    heard meanwhile is handed on to whoever reads ``receive`` next."""
    listening = asyncio.ensure_future(receive())
    try:
        await asyncio.wait((decided, listening), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        listening.cancel()
        _abandon(decided, pending)
        raise
    if not decided.done():
        _abandon(decided, pending)
        return _DISCONNECTED, receive
    if not listening.done():
        listening.cancel()
        return decided.result(), receive
    return decided.result(), _first_then(listening.result(), receive)


def _abandon(decided: asyncio.Future[Any], pending: Any) -> None:
    """Stop waiting; a key the claim took meanwhile is released (the app never ran)."""
    pending.leave()
    decided.cancel()


async def _read_body(receive: Receive, limit: int) -> bytes | object:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TOO_LARGE
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _refuse(receive: Receive, send: Send, response: _Response) -> None:
    """Answer without running the app. Before a 413, what is left of the body is read and
    thrown away, up to ``DRAIN_LIMIT``, so a client still sending can read the answer:
    servers close the connection once the app returns (B7)."""
    if response[0] == 413:
        drained = 0
        while drained <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
    await _respond(send, response)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The app's ``receive``: the buffered body first, then whatever the server says
    (``http.disconnect`` when the client goes away)."""
    return _first_then({"type": "http.request", "body": body, "more_body": False}, receive)


def _first_then(message: Message, receive: Receive) -> Receive:
    """A ``receive`` that answers `message` first, then passes on to `receive`."""
    given = False

    async def receive_next() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return message

    return receive_next


async def _respond(send: Send, response: _Response) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Recorder:
    """Wraps ``send`` (and ``receive``) for one executed request: every message goes out as
    the app sends it, while the lease (the engine's recorder) keeps a copy of the response.

    How the response ends decides the key (B11): the last body message stores it; an
    exception from the app releases it, so a retry runs again. A client that went away
    (the app was told ``http.disconnect``, or the server's ``send`` failed) never releases:
    a response the app still finishes is stored whole; one cut short (Starlette stops a
    streaming body on disconnect) is stored without its body (B12), so the retry replays
    its status and headers instead of running the app twice. Cancelled by the server, the
    app may have done its work before: the key stays claimed until ``max_lease``."""

    __slots__ = ("gone", "lease", "loop", "middleware", "receive", "send")

    def __init__(self, lease: Lease, send: Send, loop: asyncio.AbstractEventLoop, middleware: Configured[Any, Any]) -> None:
        self.lease = lease
        self.send = send
        self.loop = loop
        self.middleware = middleware
        self.gone = False

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        self.receive = receive
        try:
            await app(scope, self.watching_receive, self.recording_send)
        except asyncio.CancelledError:
            if self.lease.active:
                self.lease.complete(self.loop, omitted=True)  # lands in the background
            raise
        except BaseException:
            await self.end(omitted=self.gone, fail=not self.gone)
            raise
        # Returned without finishing its response: cut short by the client's leaving, or
        # the app's own fault (an error of its body, so the key is released).
        await self.end(omitted=True, fail=not self.gone)

    async def end(self, omitted: bool, fail: bool) -> None:
        if self.lease.active:
            done = self.lease.release(self.loop) if fail else self.lease.complete(self.loop, omitted)
            if done is not None:
                await done

    async def watching_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.gone = True
        return message

    async def recording_send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body" and self.lease.active:
            chunk = message.get("body", b"")
            if chunk:
                self.lease.push(chunk)
            if not message.get("more_body", False):
                done = self.lease.complete(self.loop)
                if done is not None:
                    await done
        elif kind == "http.response.start":
            status = message["status"]
            if self.lease.start(status, message.get("headers", ()), self.middleware.verdict(status)):
                # A server sends a head without a body (204, 304, Content-Length: 0) as the
                # whole response: stored first, so a retry sent at once finds the replay.
                done = self.lease.complete(self.loop)
                if done is not None:
                    await done
        try:
            await self.send(message)
        except OSError:
            self.gone = True  # servers of ASGI 2.4 and later say so on send
            raise
