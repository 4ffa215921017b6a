"""WSGI request bodies under the servers that hand the application what the client sent
(werkzeug's development server, the standard library's wsgiref): a Content-Length that is
not a number, or none at all, never makes the middleware read past max_request_body (B7)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from idempo import MemoryStore
from idempo.wsgi import IdempotencyMiddleware

from idempo_tests.conftest import key
from idempo_tests.servers import werkzeug_in_thread, wsgiref_in_thread

LIMIT = 1024


class App:
    """Echoes what it read; counts its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.read: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.runs += 1
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.read.append(len(body))
        start_response("201 Created", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]


SERVERS = {"werkzeug": werkzeug_in_thread, "wsgiref": wsgiref_in_thread}


def exchange(base: str, head: list[str], body: bytes = b"", close_after: bool = True) -> tuple[int, bytes]:
    """A raw HTTP/1.1 request; the status and body of the answer."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join([*head, "Host: t", "Connection: close", "", ""]).encode() + body)
        if close_after:
            sock.shutdown(socket.SHUT_WR)  # the client is done: a server reading to EOF would get it all
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "12, 13"])
def test_b7_a_content_length_that_is_not_a_number_is_refused(server: str, length: str) -> None:
    app = App()
    with SERVERS[server](IdempotencyMiddleware(app, store=MemoryStore(), max_request_body=LIMIT)) as base:
        status, body = exchange(base, ["POST /pay HTTP/1.1", f"Idempotency-Key: {key()}", f"Content-Length: {length}"], b"x" * 4 * LIMIT)
    assert status == 400 and b"body-unreadable" in body, body
    assert app.runs == 0


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_b7_without_a_length_at_most_the_limit_is_read(server: str) -> None:
    app = App()
    with SERVERS[server](IdempotencyMiddleware(app, store=MemoryStore(), max_request_body=LIMIT)) as base:
        status, body = exchange(base, ["POST /pay HTTP/1.1", f"Idempotency-Key: {key()}"], b"x" * 4 * LIMIT)
    # No length and no end marked by the server (PEP 3333): there is no body to read.
    assert (status, body) == (201, b"") and app.read == [0]


def chunked(body: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 500]), body[i : i + 500]) for i in range(0, len(body), 500)) + b"0\r\n\r\n"


def test_b7_chunked_bodies_under_werkzeug_are_bounded() -> None:
    """werkzeug decodes chunked bodies and marks their end (wsgi.input_terminated): read up
    to the limit, refused past it."""
    app = App()
    with werkzeug_in_thread(IdempotencyMiddleware(app, store=MemoryStore(), max_request_body=LIMIT)) as base:
        head = ["POST /pay HTTP/1.1", "Transfer-Encoding: chunked"]
        small = exchange(base, [*head, f"Idempotency-Key: {key()}"], chunked(b"y" * 700), close_after=False)
        big = exchange(base, [*head, f"Idempotency-Key: {key()}"], chunked(b"z" * 3 * LIMIT), close_after=False)
    assert small == (201, b"y" * 700)
    assert big[0] == 413 and b"body-too-large" in big[1]
    assert app.runs == 1
