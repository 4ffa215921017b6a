"""The rules of DESIGN.md §3 through Starlette, FastAPI and Flask, on the memory, Redis
and PostgreSQL stores (every test runs for each framework × store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from idempo_tests.conftest import Client, key


async def test_b1_only_covered_methods_are_touched(client: Client) -> None:
    k = key("b1")
    for _ in range(2):
        r = await client.request("GET", "/counter", key=k)
        assert r.status == 200 and not r.replayed
    first = await client.post("/echo", k, b"x")
    second = await client.post("/echo", k, b"x")
    assert not first.replayed and second.replayed
    assert client.count == 1


async def test_b2_quoted_bare_and_header_case(client: Client) -> None:
    k = key("b2")
    first = await client.post("/echo", f'"{k}"', b"x")
    assert first.status == 201 and not first.replayed, "a first response carries no replay header (B14)"
    assert (await client.post("/echo", k, b"x")).replayed, "a bare key is the same key as its quoted form"
    r = await client.request("POST", "/echo", body=b"x", headers={"IDEMPOTENCY-KEY": k})
    assert r.replayed, "the header name is case-insensitive"
    assert client.count == 1


async def test_b3_invalid_keys_are_rejected_before_the_app(client_factory: Callable[..., Client]) -> None:
    client = client_factory(max_key_length=16)
    for bad in ['""', '"a", "b"', "a,b", '"unterminated', '"bad\\escape"', "k" * 17]:
        (await client.post("/echo", bad, b"x")).problem(400, "invalid-key")
    assert client.count == 0
    assert (await client.post("/echo", "k" * 16, b"x")).status == 201


async def test_b4_missing_key_passes_or_is_required(client_factory: Callable[..., Client]) -> None:
    optional = client_factory()
    assert (await optional.post("/echo", None, b"x")).status == 201
    assert not (await optional.post("/echo", None, b"x")).replayed
    assert optional.count == 2
    # Passed through without a native claim, yet counted like any bypass.
    assert optional.middleware.stats()["bypassed"] == 2
    required = client_factory(required=True)
    doc = (await required.post("/echo", None, b"x")).problem(400, "missing-key")
    assert doc["title"] == "Idempotency-Key is missing"
    assert required.count == 0
    assert (await required.request("GET", "/counter")).status == 200


async def test_b5_scope_separates_tenants(client: Client) -> None:
    k = key("b5")
    a1 = await client.post("/echo", k, b"a", headers={"X-Tenant": "a"})
    b1 = await client.post("/echo", k, b"a", headers={"X-Tenant": "b"})
    assert not a1.replayed and not b1.replayed
    assert (await client.post("/echo", k, b"a", headers={"X-Tenant": "a"})).replayed
    assert client.count == 2


async def test_b6_mismatch_keeps_the_stored_response(client: Client) -> None:
    k = key("b6")
    first = await client.post("/echo?a=1", k, b"original")
    doc = (await client.post("/echo?a=1", k, b"changed")).problem(422, "fingerprint-mismatch")
    assert doc["title"] == "Idempotency-Key is already used"
    (await client.post("/echo?a=2", k, b"original")).problem(422, "fingerprint-mismatch")
    retry = await client.post("/echo?a=1", k, b"original")
    assert retry.replayed and retry.body == first.body == b"original"
    assert client.count == 1


async def test_b7_body_limit_and_unchanged_body(client_factory: Callable[..., Client]) -> None:
    client = client_factory(max_request_body=1024)
    k = key("b7")
    (await client.post("/echo", k, b"x" * 1025)).problem(413, "body-too-large")
    assert client.count == 0
    body = bytes(range(256)) * 4
    r = await client.post("/echo", k, body, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201 and r.body == body, "nothing was stored for the 413, and the app got the body unchanged"
    assert (await client.post("/echo", None, b"z" * 4096)).body == b"z" * 4096, "bodies without a key are not limited"


async def test_b9_in_flight_duplicate_gets_409_with_retry_after(client_factory: Callable[..., Client]) -> None:
    client = client_factory(lease_ttl=5.0)
    k = key("b9")
    first = asyncio.create_task(client.post("/slow?ms=600", k))
    await asyncio.sleep(0.2)
    dup = await client.post("/slow?ms=600", k)
    doc = dup.problem(409, "key-in-use")
    assert doc["title"] == "A request is outstanding for this Idempotency-Key"
    assert 1 <= int(dup.headers["retry-after"]) <= 5
    assert (await first).status == 200
    assert (await client.post("/slow?ms=600", k)).replayed
    assert client.count == 1


async def test_b11_4xx_stored_5xx_released(client: Client) -> None:
    k4, k5 = key("b11-4"), key("b11-5")
    assert (await client.post("/status/404", k4)).status == 404
    replay = await client.post("/status/404", k4)
    assert replay.replayed and replay.status == 404 and replay.text == "status:404"
    for _ in range(2):
        r = await client.post("/status/503", k5)
        assert r.status == 503 and not r.replayed
    assert client.count == 3


async def test_b11_an_exception_releases_the_key(client: Client) -> None:
    k = key("b11-raise")
    for _ in range(2):
        try:
            r = await client.post("/raise", k)
            assert r.status == 500
        except RuntimeError as e:
            assert "on purpose" in str(e)
    assert client.count == 2, "the retry ran the app again"


async def test_b12_large_response_is_stored_without_its_body(client_factory: Callable[..., Client]) -> None:
    client = client_factory(max_response_body=64 * 1024)
    k = key("b12")
    first = await client.post("/large?bytes=200000", k)
    assert len(first.body) == 200_000 and "idempotency-replay" not in first.headers
    replay = await client.post("/large?bytes=200000", k)
    assert replay.status == 200 and replay.replayed and replay.body == b""
    assert replay.headers["idempotency-replay"] == "omitted"
    assert replay.headers["content-type"] == "application/octet-stream"
    assert client.count == 1
    assert client.middleware.stats()["omitted"] == 1


async def test_b14_replayed_headers(client: Client) -> None:
    k = key("b14")
    first = await client.post("/echo", k, b"{}", headers={"Content-Type": "application/json"})
    replay = await client.post("/echo", k, b"{}", headers={"Content-Type": "application/json"})
    assert replay.status == 201 and replay.body == first.body
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.headers["content-length"] == "2"
    assert "idempotency-replayed" not in first.headers


async def test_b15_problem_documents(client_factory: Callable[..., Client]) -> None:
    default = client_factory(required=True)
    doc = (await default.post("/echo")).problem(400, "missing-key")
    assert doc["type"] == "https://idempo.dev/problems/missing-key"
    custom = client_factory(required=True, problem_base="https://errors.example.com/")
    assert (await custom.post("/echo")).problem(400, "missing-key")["type"] == "https://errors.example.com/missing-key"


async def test_b19_stats_count_outcomes(client_factory: Callable[..., Client]) -> None:
    client = client_factory(max_request_body=8)
    k = key("b19")
    await client.request("GET", "/counter")
    await client.post("/echo", k, b"x")
    await client.post("/echo", k, b"x")
    await client.post("/echo", k, b"y")
    await client.post("/echo", '"bad', b"x")
    await client.post("/echo", key(), b"0123456789")
    stats = client.middleware.stats()
    assert {n: stats[n] for n in ("bypassed", "executed", "replayed", "mismatches", "invalid", "too_large")} == {
        "bypassed": 1,
        "executed": 1,
        "replayed": 1,
        "mismatches": 1,
        "invalid": 1,
        "too_large": 1,
    }
    assert set(stats) == {
        "bypassed", "executed", "replayed", "conflicts", "mismatches", "invalid",
        "too_large", "store_errors", "lease_lost", "omitted",
    }  # fmt: skip


@pytest.mark.parametrize("framework", ["starlette", "flask"])
async def test_b13_streamed_bodies_are_replayed_byte_for_byte(client: Client) -> None:
    k = key("b13")
    first = await client.post("/stream", k)
    assert first.body.count(b"data: event") == 5
    replay = await client.post("/stream", k)
    assert replay.replayed and replay.body == first.body
    assert replay.headers["content-type"].startswith("text/event-stream")


async def test_b10_renewal_keeps_a_long_request_exclusive(client_factory: Callable[..., Client]) -> None:
    client = client_factory(lease_ttl=0.3)
    k = key("b10")
    first = asyncio.create_task(client.post("/slow?ms=900", k))
    for _ in range(3):
        await asyncio.sleep(0.25)
        (await client.post("/slow?ms=900", k)).problem(409, "key-in-use")
    assert (await first).status == 200
    assert (await client.post("/slow?ms=900", k)).replayed
    assert client.count == 1, "an app three times longer than the lease ran once"
