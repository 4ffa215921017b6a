"""B18: a record that cannot be decoded is a store error (503), never a re-execution, and
is left in place."""

from __future__ import annotations

import uuid
from typing import Any

from idempo import RedisStore
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client as WerkzeugClient

from idempo_tests.conftest import env
from idempo_tests.test_event_loop import redis_command


def test_b18_corrupt_redis_record_is_503_and_kept() -> None:
    url = env("REDIS_URL", "Redis")
    prefix = f"corrupt-{uuid.uuid4().hex}:"
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"made"]

    client = WerkzeugClient(IdempotencyMiddleware(app, store=RedisStore(url, prefix=prefix)))
    assert client.post("/orders", headers={"Idempotency-Key": "k"}).get_data() == b"made"
    # The one key under this prefix is the record just stored: overwrite its body.
    reply = redis_command(url, "KEYS", f"{prefix}*")
    redis_key = reply.split(b"\r\n")[2].decode()
    assert redis_key.startswith(prefix + "{")
    assert redis_command(url, "HSET", redis_key, "r", "garbage").startswith(b":")
    r = client.post("/orders", headers={"Idempotency-Key": "k"})
    assert r.status_code == 503 and r.json is not None and r.json["code"] == "store-unavailable"
    assert runs == 1, "a corrupt record never runs the app again"
    assert redis_command(url, "HGET", redis_key, "r").endswith(b"garbage\r\n"), "the record was left as it was"
