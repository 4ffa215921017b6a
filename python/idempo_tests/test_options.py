"""What only the Python package has: its options reach the core as given, and the core's
defaults, counter list and rules are the ones Python sees, without Python stating any of
them (the rules themselves are tested through the scenario files)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import httpx
import idempo
import pytest
from idempo import COUNTERS, ConfigurationError, MemoryStore
from idempo._native import defaults
from idempo._options import Configured
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from werkzeug.test import Client as WerkzeugClient

from idempo_tests.conftest import key

# Python's own arguments, which are not engine options.
OWN = {"self", "app", "store", "scope", "store_status"}


def test_the_signature_names_exactly_the_core_options() -> None:
    named = set(inspect.signature(Configured.__init__).parameters) - OWN
    assert named == set(defaults()), "the middleware's keyword arguments are the core's options"
    for name, parameter in inspect.signature(Configured.__init__).parameters.items():
        if name not in OWN:
            assert parameter.default is None, f"{name} restates a default: the core's must apply"


@pytest.mark.parametrize("middleware", [AsgiMiddleware, WsgiMiddleware])
def test_unset_options_are_the_core_defaults(middleware: Any) -> None:
    # The core's table, read through the binding: a default stated in Python would differ
    # (the values themselves are the core's to test).
    assert middleware(None).options() == defaults()
    assert set(defaults()) >= {"lease_ttl", "ttl", "max_request_body", "methods"}


@pytest.mark.parametrize("middleware", [AsgiMiddleware, WsgiMiddleware])
def test_every_option_reaches_the_core(middleware: Any) -> None:
    given: dict[str, Any] = {
        "methods": ["PUT", "post"],
        "header": "X-Request-Key",
        "required": True,
        "max_key_length": 40,
        "strict_key_syntax": True,
        "max_request_body": 2048,
        "max_response_body": 4096,
        "lease_ttl": 2.5,
        "max_lease": 30.0,
        "ttl": 120.0,
        "replay_headers": ("etag", "location"),
        "replayed_header": "X-Replayed",
        "on_store_error": "fail_open",
        "persist_timeout": 1.5,
        "retry_after": 3.0,
        "wait": 2.0,
        "max_wait": 20.0,
        "max_waiters": 7,
        "fingerprint_headers": ["x-account"],
        "fingerprint_secret": b"\x00secret",
        "problem_base": "https://errors.example.com/",
    }
    assert set(given) == set(defaults()), "every option is tried"
    seen = middleware(None, **given).options()
    expected = {**given, "methods": ["PUT", "POST"], "replay_headers": ["etag", "location"], "fingerprint_secret": "<secret>"}
    assert seen == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_store_error": "sometimes"}, 'on_store_error must be "fail_closed" or "fail_open"'),
        ({"header": "bad header"}, "header"),
        ({"lease_ttl": -1.0}, "lease_ttl must be a number of seconds from 0 to 31622400"),
        ({"ttl": 1e22}, "ttl must be a number of seconds"),
        ({"ttl": float("nan")}, "ttl must be a number of seconds"),
        ({"methods": "POST"}, "methods must be a list of strings"),
        ({"methods": ["PO ST"]}, "methods"),
        ({"max_key_length": 0}, "max_key_length must be at least 1"),
        ({"max_request_body": 1.5}, "max_request_body must be a whole number"),
        ({"required": 1}, "required must be true or false"),
        ({"store_status": 5}, "store_status must be a callable"),
        ({"scope": "tenant"}, "scope must be a callable"),
    ],
)
def test_invalid_options_raise_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WsgiMiddleware(lambda e, s: [], store=MemoryStore(), **options)


def test_counters_are_the_cores() -> None:
    mw = AsgiMiddleware(None)
    assert list(mw.stats()) == COUNTERS == idempo._native.COUNTERS
    assert COUNTERS[:3] == ["bypassed", "executed", "replayed"]


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = environ["PATH_INFO"].strip("/")
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    return [b"ran"]


def test_b11_store_status_verdicts_from_python() -> None:
    runs = 0

    def counting(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        return echo(environ, start_response)

    only_201 = WerkzeugClient(WsgiMiddleware(counting, store=MemoryStore(), store_status=lambda s: s == 201))
    k = key()
    for _ in range(2):
        only_201.post("/200", headers={"Idempotency-Key": k}).get_data()
    assert runs == 2, "a 200 is not stored when store_status says so"
    k = key()
    assert only_201.post("/201", headers={"Idempotency-Key": k}).get_data() == b"ran"
    replay = only_201.post("/201", headers={"Idempotency-Key": k})
    assert replay.headers.get("Idempotency-Replayed") == "true" and runs == 3


def test_b11_a_failing_store_status_falls_back_to_the_default_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="idempo")

    def broken(status: int) -> bool:
        raise ValueError("no verdict")

    client = WerkzeugClient(WsgiMiddleware(echo, store=MemoryStore(), store_status=broken))
    k = key()
    client.post("/200", headers={"Idempotency-Key": k}).get_data()
    replay = client.post("/200", headers={"Idempotency-Key": k})
    assert replay.headers.get("Idempotency-Replayed") == "true", "stored, as the default (< 500) says"
    import time

    deadline = time.monotonic() + 2
    while not any("store_status failed" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any("store_status failed" in r.getMessage() and "no verdict" in r.getMessage() for r in caplog.records)


async def test_b15_problem_base_reaches_the_problems() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    mw = AsgiMiddleware(app, required=True, problem_base="https://errors.example.com/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t") as client:
        doc = (await client.post("/pay")).json()
    assert doc["type"] == "https://errors.example.com/missing-key"


async def test_b19_stats_count_what_python_sees() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = AsgiMiddleware(app, max_request_body=8)
    k = key()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t") as client:
        await client.get("/")  # not covered: not counted
        await client.post("/", content=b"x")  # no key: bypassed
        await client.post("/", content=b"x", headers={"Idempotency-Key": k})
        await client.post("/", content=b"x", headers={"Idempotency-Key": k})
        await client.post("/", content=b"y", headers={"Idempotency-Key": k})
        await client.post("/", content=b"x", headers={"Idempotency-Key": '"bad'})
        await client.post("/", content=b"0123456789", headers={"Idempotency-Key": key()})
    stats = mw.stats()
    counted = {n: stats[n] for n in ("bypassed", "executed", "replayed", "mismatches", "invalid", "too_large")}
    assert counted == {"bypassed": 1, "executed": 1, "replayed": 1, "mismatches": 1, "invalid": 1, "too_large": 1}
