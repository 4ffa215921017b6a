"""B22: Redis over rediss:// and PostgreSQL with sslmode, against the TLS servers make test
starts: the right CA file serves and replays a keyed request, the wrong one is refused."""

from __future__ import annotations

from typing import Any

import pytest
from idempo import PostgresStore, RedisStore, StoreUnavailableError
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client

from idempo_tests.conftest import env, key


def served_and_replayed(store: RedisStore | PostgresStore) -> None:
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"paid over tls"]

    client = Client(IdempotencyMiddleware(app, store=store))
    k = key("tls")
    for replayed in (None, "true"):
        r = client.post("/pay", data=b"x", headers={"Idempotency-Key": k})
        assert (r.status_code, r.get_data(), r.headers.get("Idempotency-Replayed")) == (201, b"paid over tls", replayed)
        r.close()
    assert runs == 1


def test_b22_rediss_with_the_right_ca_and_the_wrong_one() -> None:
    url, ca = env("REDIS_TLS_URL", "TLS Redis"), env("IDEMPO_TLS_CA", "TLS CA")
    store = RedisStore(url, ca_file=ca)
    assert repr(store).endswith(f'ca_file="{ca}")'), repr(store)
    served_and_replayed(store)
    with pytest.raises(StoreUnavailableError, match="(?i)certificate"):
        RedisStore(url, ca_file=env("IDEMPO_TLS_WRONG_CA", "TLS CA"))


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
def test_b22_postgres_sslmode_with_the_right_ca_and_the_wrong_one(sslmode: str) -> None:
    url = env("DATABASE_TLS_URL", "TLS PostgreSQL") + f"?sslmode={sslmode}"
    served_and_replayed(PostgresStore(url, ca_file=env("IDEMPO_TLS_CA", "TLS CA")))
    with pytest.raises(StoreUnavailableError):
        PostgresStore(url, ca_file=env("IDEMPO_TLS_WRONG_CA", "TLS CA"))
