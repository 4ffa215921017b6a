"""PEP 3333 idempotency middleware, for Flask, Django and any WSGI application.

    app.wsgi_app = IdempotencyMiddleware(app.wsgi_app, store=PostgresStore(url))

For a covered request with a key, the body is read (up to ``max_request_body``) and handed
to the app as a fresh ``wsgi.input``; the response iterable is passed through chunk by
chunk while a copy is kept, and stored once the last chunk is known (by Content-Length, or
when the iterable ends). The app's iterable is always closed. An exception in the app
releases the key and propagates. Store calls block the worker thread with the GIL
released, so other threads keep running.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

from idempo._native import Lease
from idempo._options import Configured

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

__all__ = ["Environ", "IdempotencyMiddleware", "StartResponse", "WSGIApp"]


class IdempotencyMiddleware(Configured[WSGIApp, Environ]):
    """Idempotency-Key handling for a WSGI app. ``scope``, when given, maps the WSGI
    environ to the namespace keys live in (a tenant or user id). Every other option is the
    engine's (see the README); durations are seconds."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, query = _raw_target(environ)
        checked = self.engine.check_wsgi(environ["REQUEST_METHOD"], path, query, environ)
        if checked is None:
            return self.app(environ, start_response)
        if isinstance(checked, tuple):
            return _respond(start_response, checked)
        pending = checked
        if self.scope is not None:
            pending.set_scope(self.scope(environ))
        try:
            body = _read_body(environ, pending.body_limit)
        except _TooLarge:
            return _respond(start_response, pending.too_large())
        except (OSError, ValueError) as e:
            return _respond(start_response, pending.unreadable(f"the request body could not be read: {e}"))
        decided = pending.begin_blocking(body)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if decided is None:  # the store failed and on_store_error is fail_open
            return self.app(environ, start_response)
        if isinstance(decided, tuple):
            return _respond(start_response, decided)
        return _recorded(self.app, decided, environ, start_response)


def _raw_target(environ: Environ) -> tuple[bytes, bytes]:
    """The request target as the client sent it, so fingerprints match other servers
    and languages: gunicorn's RAW_URI or REQUEST_URI when present, else rebuilt."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        target = raw.encode("latin-1")
        if target.startswith((b"http://", b"https://")):  # absolute form
            slash = target.find(b"/", target.find(b"//") + 2)
            target = target[slash:] if slash >= 0 else b"/"
        path, _, query = target.partition(b"?")
        return path, query
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    return quote(path, safe="/:@!$&'()*+,;=-._~%").encode("ascii"), environ.get("QUERY_STRING", "").encode("latin-1")


class _TooLarge(Exception):
    pass


def _read_body(environ: Environ, limit: int) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH", "")
    if length:
        expected = int(length)
        if expected > limit:
            raise _TooLarge
        data = stream.read(expected) if expected else b""
        if len(data) < expected:
            raise ValueError(f"the client sent {len(data)} of {expected} bytes")
        return bytes(data)
    if environ.get("wsgi.input_terminated"):
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise _TooLarge
        return bytes(data)
    return b""  # PEP 3333: without a length there is no body to read


def _respond(start_response: StartResponse, response: tuple[int, list[tuple[bytes, bytes]], bytes]) -> list[bytes]:
    status, headers, body = response
    start_response(_status_line(status), [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers])
    return [body]


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _recorded(app: WSGIApp, lease: Lease, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """Run the app and pass its body through chunk by chunk, recording it in the lease."""
    expected: list[int | None] = [None]

    def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
        lease.start(int(status.split(" ", 1)[0]), headers)
        expected[0] = next((int(v) for n, v in headers if n.lower() == "content-length" and v.isdigit()), None)
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    try:
        app_iter = app(environ, recording_start_response)
    except BaseException:
        lease.release_blocking()
        raise
    return _stream(app_iter, lease, expected)


def _stream(app_iter: Iterable[bytes], lease: Lease, expected: list[int | None]) -> Iterator[bytes]:
    sent = 0
    try:
        for chunk in app_iter:
            if chunk and lease.active:
                lease.push(chunk)
                sent += len(chunk)
                # The last chunk by Content-Length: store before the client has it all.
                if expected[0] is not None and sent >= expected[0]:
                    lease.complete_blocking()
            yield chunk
        if lease.active:
            lease.complete_blocking()
    finally:
        # An exception, or the server closing us early (client gone): release the key.
        if lease.active:
            lease.release_blocking()
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
