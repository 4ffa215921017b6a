"""PEP 3333 idempotency middleware, for Flask, Django and any WSGI application.

    app.wsgi_app = IdempotencyMiddleware(app.wsgi_app, store=PostgresStore(url))

For a covered request with a key, the body is read (up to ``max_request_body``) and handed
to the app as a fresh ``wsgi.input``; the response iterable is passed through chunk by
chunk while the engine keeps a copy, stored once the last chunk is known (by
Content-Length, or when the iterable ends). The app's iterable is always closed. An
exception in the app releases the key and propagates; a client that goes away never does
(see ``_Recorded``). Store calls block the worker thread with the GIL released, so other
threads keep running.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import Any

from idempo._native import DRAIN_LIMIT, Lease
from idempo._options import Configured

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

__all__ = ["Environ", "IdempotencyMiddleware", "StartResponse", "WSGIApp"]

_Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class IdempotencyMiddleware(Configured[WSGIApp, Environ]):
    """Idempotency-Key handling for a WSGI app. ``scope``, when given, maps the WSGI
    environ to the namespace keys live in (the authenticated caller). Every other option is
    the engine's (see the README); durations are seconds."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        checked = self.engine.check_wsgi(environ)
        if checked is None:
            return self.app(environ, start_response)
        if isinstance(checked, tuple):
            return _refuse(environ, start_response, checked)
        pending = checked
        self.place(pending, environ)
        try:
            body = _read_body(environ, pending.declared_length, pending.body_limit)
        except _TooLarge:
            return _refuse(environ, start_response, pending.too_large())
        except (OSError, ValueError) as e:
            return _respond(start_response, pending.unreadable(f"the request body could not be read: {e}"))
        decided = pending.begin(body)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if decided is None:  # the store failed and on_store_error is fail_open
            return self.app(environ, start_response)
        if isinstance(decided, tuple):
            return _respond(start_response, decided)
        return _run(self, decided, environ, start_response)


class _TooLarge(Exception):
    pass


def _read_body(environ: Environ, declared: int | None, limit: int) -> bytes:
    """The body, by the length the engine read from the head (already within the limit);
    without one, up to the limit from a server that marks the end of its input
    (``wsgi.input_terminated``: chunked bodies), else none (PEP 3333)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if declared is not None:
        data = b""
        while len(data) < declared:
            chunk = stream.read(declared - len(data))
            if not chunk:
                raise ValueError(f"the client sent {len(data)} of {declared} bytes")
            data += chunk
        return bytes(data)
    if environ.get("wsgi.input_terminated"):
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise _TooLarge
        return bytes(data)
    return b""


def _refuse(environ: Environ, start_response: StartResponse, response: _Response) -> list[bytes]:
    """Answer without running the app. Before a 413, what is left of the body is read and
    thrown away, up to ``DRAIN_LIMIT``, so a client still sending can read the answer (B7);
    never past the declared length (a plain socket would block there)."""
    stream = environ.get("wsgi.input")
    if response[0] == 413 and stream is not None:
        try:
            left = min(int(environ.get("CONTENT_LENGTH") or 0), DRAIN_LIMIT)
        except ValueError:
            left = 0
        if not left and environ.get("wsgi.input_terminated"):
            left = DRAIN_LIMIT
        while left > 0 and (chunk := stream.read(min(left, 65536))):
            left -= len(chunk)
    return _respond(start_response, response)


def _respond(start_response: StartResponse, response: _Response) -> list[bytes]:
    status, headers, body = response
    start_response(_status_line(status), [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers])
    return [body]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _run(middleware: IdempotencyMiddleware, lease: Lease, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Run the app, recording its head in the lease; its body is recorded by `_Recorded`."""
    recorded = _Recorded(lease)

    def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        code = int(status.split(" ", 1)[0])
        lease.start(code, headers, middleware.verdict(code))
        recorded.expect(headers)
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    try:
        app_iter = middleware.app(environ, recording_start_response)
    except BaseException:
        lease.release()
        raise
    recorded.wrap(app_iter)
    return recorded


class _Recorded:
    """The app's response iterable, passed through chunk by chunk while the lease records
    it. A class rather than a generator, so that ``close()`` works even before iteration
    starts (werkzeug's ``ClosingIterator`` does the same).

    How the response ends decides the key (B11): its last chunk stores it; an exception
    from the app's iterable releases it, so a retry runs again. A server that stops early
    (the client went away) still closes the iterable: the rest of the body is then read
    for the record, up to ``max_response_body`` (past it the record is stored without its
    body, B12), so the retry replays the one execution instead of running it again."""

    __slots__ = ("_app_iter", "_expected", "_iter", "_lease", "_sent")

    def __init__(self, lease: Lease) -> None:
        self._lease = lease
        self._expected: int | None = None
        self._sent = 0
        self._app_iter: Iterable[bytes] = ()
        self._iter: Iterator[bytes] = iter(())

    def wrap(self, app_iter: Iterable[bytes]) -> None:
        self._app_iter = app_iter
        self._iter = iter(app_iter)

    def expect(self, headers: list[tuple[str, str]]) -> None:
        """The declared length: once that much is sent, the response is complete."""
        self._expected = next((int(v) for n, v in headers if n.lower() == "content-length" and v.isdigit()), None)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        lease = self._lease
        try:
            chunk = next(self._iter)
        except StopIteration:
            if lease.active:
                lease.complete()
            raise
        except BaseException:
            if lease.active:
                lease.release()
            raise
        if chunk and lease.active:
            lease.push(chunk)
            self._sent += len(chunk)
            # The last chunk by Content-Length: store before the client has it all.
            if self._expected is not None and self._sent >= self._expected:
                lease.complete()
        return chunk

    def close(self) -> None:
        try:
            # Closed before the end: the client went away, and the app's work stands. Read
            # on while the copy is whole (or the head may still be to come: nothing sent).
            while self._lease.active and (self._lease.capturing or self._sent == 0):
                next(self)  # StopIteration completes; an exception releases and propagates
            if self._lease.active:
                self._lease.complete(omitted=True)  # the copy is over the limit
        except StopIteration:
            pass
        finally:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
