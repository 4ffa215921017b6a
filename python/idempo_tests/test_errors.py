"""Bad input and broken stores: typed exceptions at construction, problem responses at
request time, exceptions that propagate with the key released, iterables always closed."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from idempo import ConfigurationError, IdempoError, MemoryStore, PostgresStore, RedisStore, StoreUnavailableError
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from werkzeug.test import Client as WerkzeugClient

from idempo_tests.conftest import key
from idempo_tests.servers import free_port, wait_for_port


def test_unreachable_stores_fail_at_construction_with_a_typed_error() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailableError):
        RedisStore(f"redis://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailableError):
        PostgresStore(f"postgres://postgres@127.0.0.1:{port}/postgres")
    # A URL of the wrong kind is a configuration error, and never echoes a password.
    with pytest.raises(ConfigurationError, match="is not a Redis URL") as error:
        RedisStore("postgres://app:s3cret@db/x")
    assert "s3cret" not in str(error.value)
    with pytest.raises(ConfigurationError, match="is not a PostgreSQL URL"):
        PostgresStore("not a url")
    assert issubclass(StoreUnavailableError, IdempoError)


def test_a_redis_prefix_with_braces_is_refused_before_connecting() -> None:
    # Redis Cluster hashes the first {...} of a key: every record would land in one slot.
    for make in (lambda: RedisStore("redis://127.0.0.1:1", prefix="app{t}:"), lambda: RedisStore.cluster(["redis://127.0.0.1:1"], prefix="}")):
        with pytest.raises(ConfigurationError, match="one slot"):
            make()


def test_a_store_of_the_wrong_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MemoryStore, RedisStore or PostgresStore"):
        AsgiMiddleware(lambda s, r, se: None, store="redis://localhost")  # type: ignore[arg-type]


class OwnRedis:
    """A redis-server this test can stop."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be installed (make test installs it)"
        # A port taken by a suite running beside this one makes redis-server exit: try another.
        for attempt in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            try:
                wait_for_port(self.port, proc=self.proc)
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [environ["wsgi.input"].read()]


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_b16_store_down_at_request_time(policy: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="idempo")
    server = OwnRedis()
    try:
        mw = WsgiMiddleware(echo_app, store=RedisStore(f"redis://127.0.0.1:{server.port}"), on_store_error=policy)  # type: ignore[arg-type]
        client = WerkzeugClient(mw)
        assert client.post("/pay", data=b"x", headers={"Idempotency-Key": key()}).get_data() == b"x"
        server.stop()
        r = client.post("/pay", data=b"body", headers={"Idempotency-Key": key()})
        if policy == "fail_closed":
            assert r.status_code == 503 and r.json is not None and r.json["code"] == "store-unavailable"
            assert r.headers["Retry-After"] == "1"
        else:
            assert r.status_code == 201 and r.get_data() == b"body", "fail open runs the app with its body"
            # The warning is logged from idempo's logging thread.
            deadline = time.monotonic() + 2
            while not any("unprotected" in rec.getMessage() for rec in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.02)
            warned = [rec for rec in caplog.records if "unprotected" in rec.getMessage()]
            assert warned and warned[0].levelno == logging.WARNING and warned[0].name == "idempo"
        assert mw.stats()["store_errors"] == 1
    finally:
        server.stop()


def test_wsgi_exception_propagates_and_releases_the_key() -> None:
    runs = 0

    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        raise ValueError("app failed")

    client = WerkzeugClient(WsgiMiddleware(failing, store=MemoryStore()))
    k = key()
    for _ in range(2):
        with pytest.raises(ValueError, match="app failed"):
            client.post("/pay", headers={"Idempotency-Key": k})
    assert runs == 2


class ClosingApp:
    """A WSGI app whose response iterable yields `chunks` and counts its `close()`."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.runs = 0
        self.closed = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.runs += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        app = self

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield from app.chunks

            def close(self) -> None:
                app.closed += 1

        return Body()


def keyed_environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/pay", "HTTP_IDEMPOTENCY_KEY": key(), "wsgi.input": None}


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    pass


def test_wsgi_a_client_gone_mid_body_leaves_the_rest_recorded() -> None:
    """B11: the server stops iterating and closes (the client went away); the rest of the
    body is read for the record, the app's iterable is closed once, and the retry is a
    replay of the one execution."""
    app = ClosingApp(b"one", b"two")
    mw = WsgiMiddleware(app, store=MemoryStore())
    environ = keyed_environ()
    it = iter(mw(dict(environ), start_response))
    assert next(it) == b"one"
    it.close()  # type: ignore[attr-defined]  # the server gives up: the client went away
    assert app.closed == 1
    replay = list(mw(dict(environ), start_response))
    assert replay == [b"onetwo"] and app.runs == 1, "the early close released the key"


def test_wsgi_a_response_closed_before_its_first_chunk_is_still_recorded() -> None:
    """A server that gives up before iterating (the client left while the app was working)
    closes the app's iterable; the app's work stands, and the retry replays it."""
    app = ClosingApp(b"never sent")
    mw = WsgiMiddleware(app, store=MemoryStore())
    environ = keyed_environ()
    mw(dict(environ), start_response).close()  # type: ignore[attr-defined]
    assert app.closed == 1, "the app's iterable was closed"
    retry = mw(dict(environ), start_response)
    assert list(retry) == [b"never sent"] and app.runs == 1, "the key was released: the retry ran the app"


def test_wsgi_an_early_close_reads_no_further_than_the_cap() -> None:
    """Past max_response_body the copy is given up: the drain stops there, and the record
    is stored without its body (B12)."""
    pulled = 0

    def endless(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        nonlocal pulled
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        while True:
            pulled += 1
            yield b"x" * 1024

    mw = WsgiMiddleware(endless, store=MemoryStore(), max_response_body=64 * 1024)
    environ = keyed_environ()
    it = iter(mw(dict(environ), start_response))
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert 64 <= pulled <= 66, f"the drain read {pulled} chunks"
    replay = WerkzeugClient(mw).post("/pay", headers={"Idempotency-Key": environ["HTTP_IDEMPOTENCY_KEY"]})
    assert replay.status_code == 200 and replay.data == b"" and pulled <= 66
    assert replay.headers["Idempotency-Replay"] == "omitted"


def test_wsgi_an_error_while_the_rest_is_read_releases_and_propagates() -> None:
    """The rest of the body raising is an error of the body (B11): released, the error
    goes to the server, and the app's iterable is still closed."""
    runs = closed = 0

    def failing(environ: dict[str, Any], start_response: Any) -> Any:
        nonlocal runs
        runs += 1
        start_response("200 OK", [("Content-Type", "text/plain")])

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"one"
                raise ValueError("the body failed")

            def close(self) -> None:
                nonlocal closed
                closed += 1

        return Body()

    mw = WsgiMiddleware(failing, store=MemoryStore())
    environ = keyed_environ()
    it = iter(mw(dict(environ), start_response))
    next(it)
    with pytest.raises(ValueError, match="the body failed"):
        it.close()  # type: ignore[attr-defined]
    assert closed == 1
    with pytest.raises(ValueError):
        list(mw(dict(environ), start_response))
    assert runs == 2, "the key was not released"


async def test_asgi_exception_propagates_and_releases_the_key() -> None:
    runs = 0

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("app failed mid-response")

    transport = httpx.ASGITransport(app=AsgiMiddleware(failing, store=MemoryStore()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            with pytest.raises(ValueError, match="mid-response"):
                await client.post("/pay", headers={"Idempotency-Key": "k-asgi-raise"})
    assert runs == 2


async def test_asgi_client_disconnect_while_reading_the_body_claims_nothing() -> None:
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1

    mw = AsgiMiddleware(app, store=MemoryStore())
    messages = iter([{"type": "http.request", "body": b"par", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/pay", "raw_path": b"/pay", "query_string": b"", "headers": [(b"idempotency-key", b"k-gone")]}
    await mw(scope, receive, send)
    assert runs == 0 and sent == []
    assert mw.stats()["executed"] == 0


async def test_hostile_headers_never_crash() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = AsgiMiddleware(app, store=MemoryStore())
    transport = httpx.ASGITransport(app=mw)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for bad in [b"\xff\xfe", b"\x00", b"a" * 100_000, b'"' + b"\\" * 51 + b'"']:
            r = await client.post("/pay", headers=[(b"Idempotency-Key", bad)])
            assert r.status_code == 400 and r.json()["code"] == "invalid-key"
        flood = [(f"X-H{i}".encode(), b"v") for i in range(2000)] + [(b"Idempotency-Key", b"ok-key")]
        assert (await client.post("/pay", headers=flood)).status_code == 200
