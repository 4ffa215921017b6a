"""B24: encryption at rest as a Python user configures it: keys as ``(id, bytes)`` pairs or
as text, a repr that shows the ids and never a key, typed configuration errors, and an
encrypted store serving and replaying through the WSGI and ASGI middleware while Redis
and PostgreSQL hold no plain body (read straight from the servers)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
from typing import Any

import httpx
import pytest
from idempo import ConfigurationError, MemoryStore, PostgresStore, RedisStore, store_from_url
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from werkzeug.test import Client

from idempo_tests.conftest import env, key

K1, K2 = secrets.token_bytes(32), secrets.token_bytes(32)


def redis_records(url: str, marker: bytes) -> tuple[int, int]:
    """How many of Redis's idempo records hold `marker`, and how many are sealed."""
    script = (
        "local n, s = 0, 0 for _, k in ipairs(redis.call('KEYS', 'idempo:*')) do "
        "local r = redis.call('TYPE', k)['ok'] == 'hash' and redis.call('HGET', k, 'r') "
        "if r and string.find(r, ARGV[1], 1, true) then n = n + 1 end "
        "if r and string.sub(r, 1, 4) == 'IDR\\2' then s = s + 1 end end return {n, s}"
    )
    out = subprocess.run(
        ["redis-cli", "-u", url, "--no-raw", "EVAL", script, "0", marker.decode()], capture_output=True, text=True
    )
    if out.returncode != 0 and "not found" in out.stderr:
        pytest.fail("redis-cli is needed to read Redis directly (apt-get install redis-tools)")
    n, s = (int(line.split()[-1]) for line in out.stdout.strip().splitlines())
    return n, s


def postgres_records(url: str, marker: bytes) -> int:
    psql = subprocess.run(
        ["bash", "-c", "command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1"], capture_output=True, text=True
    ).stdout.strip()
    sql = f"SELECT count(*) FROM idempo_records WHERE position(decode('{marker.hex()}', 'hex') in record) > 0"
    return int(subprocess.run([psql, url, "-A", "-t", "-c", sql], capture_output=True, text=True, check=True).stdout)


def wsgi_round_trip(store: RedisStore | PostgresStore, marker: bytes) -> int:
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]

    client = Client(WsgiMiddleware(app, store=store))
    k = key("enc")
    for replayed in (None, "true"):
        r = client.post("/pay", data=marker, headers={"Idempotency-Key": k})
        assert (r.status_code, r.get_data(), r.headers.get("Idempotency-Replayed")) == (201, marker, replayed)
        r.close()
    return runs


def test_b24_redis_encrypted_through_wsgi_holds_no_plain_body() -> None:
    url = env("REDIS_URL", "Redis")
    plain, sealed = f"plain-{secrets.token_hex(8)}".encode(), f"sealed-{secrets.token_hex(8)}".encode()
    assert wsgi_round_trip(RedisStore(url), plain) == 1
    assert redis_records(url, plain)[0] == 1, "without encryption the body is in Redis (the test can tell)"
    store = RedisStore(url, encryption_keys=[("k2", K2), ("k1", K1)])
    assert wsgi_round_trip(store, sealed) == 1
    assert redis_records(url, sealed)[0] == 0, "the body is in Redis in plain text"


def test_b24_postgres_encrypted_through_asgi_holds_no_plain_body() -> None:
    url = env("DATABASE_URL", "PostgreSQL")
    text = f"k1:{base64.b64encode(K1).decode()}"
    store = PostgresStore(url, encryption_keys=text)
    runs = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    async def run() -> None:
        marker = f"sealed-{secrets.token_hex(8)}".encode()
        transport = httpx.ASGITransport(app=AsgiMiddleware(app, store=store))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            k = key("enc-asgi")
            first = await client.post("/pay", content=marker, headers={"Idempotency-Key": k})
            again = await client.post("/pay", content=marker, headers={"Idempotency-Key": k})
        assert (first.status_code, again.content, again.headers.get("idempotency-replayed")) == (201, marker, "true")
        assert postgres_records(url, marker) == 0, "the body is in PostgreSQL in plain text"

    asyncio.run(run())
    assert runs == 1


def test_b24_repr_shows_key_ids_never_keys() -> None:
    store = RedisStore(env("REDIS_URL", "Redis"), encryption_keys=[("k2", K2), ("k1", K1)])
    shown = repr(store)
    assert shown.endswith(", encryption_keys=[\"k2\", \"k1\"])"), shown
    for key_bytes in (K1, K2):
        for form in (key_bytes.hex(), base64.b64encode(key_bytes).decode(), repr(key_bytes)):
            assert form not in shown


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([("k1", b"short")], 'encryption_keys: key "k1" must be 32 bytes, got 5'),
        ([("k1", K1), ("k1", K2)], 'the key id "k1" is given twice'),
        ([("bad id", K1)], 'the key id "bad id" must be 1 to 64'),
        ([], "encryption_keys holds no key"),
        ("k1", "entry 1 is not id:base64key"),
        ([("k1", "not bytes")], "encryption_keys must be a list of (id, key bytes) pairs"),
        (K1, "encryption_keys must be a list of (id, key bytes) pairs"),
    ],
)
def test_b24_bad_keys_are_configuration_errors(keys: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisStore(env("REDIS_URL", "Redis"), encryption_keys=keys)
    assert message in str(raised.value)
    assert K1.hex() not in str(raised.value) and base64.b64encode(K1).decode() not in str(raised.value)


def test_b24_the_memory_store_takes_no_keys() -> None:
    with pytest.raises(ConfigurationError, match="encryption_keys is not an option of a memory store"):
        store_from_url("memory", encryption_keys=f"k1:{base64.b64encode(K1).decode()}")
    with pytest.raises(TypeError):
        MemoryStore(encryption_keys=[("k1", K1)])  # type: ignore[call-arg]


def test_b24_keys_from_the_environment_text_form() -> None:
    text = f" k2 : {base64.urlsafe_b64encode(K2).decode().rstrip('=')} , k1:{base64.b64encode(K1).decode()}"
    store = store_from_url(env("REDIS_URL", "Redis"), encryption_keys=text)
    assert repr(store).endswith('encryption_keys=["k2", "k1"])')
