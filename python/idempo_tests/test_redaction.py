"""B22: a store's secrets (the URL's password, its password and sslpassword parameters)
never appear in a repr, an error or a log line."""

from __future__ import annotations

import logging

import pytest
from idempo import PostgresStore, StoreUnavailableError

from idempo_tests.conftest import env
from idempo_tests.servers import free_port

SECRETS = ("s3cret-pw", "k3y-pw")


def test_b22_repr_hides_password_parameters() -> None:
    store = PostgresStore(env("DATABASE_URL", "PostgreSQL") + "?password=s3cret-pw&sslpassword=k3y-pw")
    shown = repr(store)
    assert "password=***" in shown and "sslpassword=***" in shown, shown
    assert not any(s in shown for s in SECRETS), shown


def test_b22_errors_and_logs_hide_the_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="idempo")
    url = f"postgres://app:s3cret-pw@127.0.0.1:{free_port()}/x?sslpassword=k3y-pw"
    with pytest.raises(StoreUnavailableError) as error:
        PostgresStore(url)
    text = f"{error.value!s} {error.value!r} {caplog.text}"
    assert not any(s in text for s in SECRETS), text
