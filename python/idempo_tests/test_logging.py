"""Rust tracing events reach Python logging under the logger "idempo" (B19), with
redacted keys."""

from __future__ import annotations

import logging
import time

from idempo import MemoryStore
from idempo._native import _refresh_log_level
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client as WerkzeugClient


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_decisions_are_logged_under_idempo_with_redacted_keys() -> None:
    logger = logging.getLogger("idempo")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    _refresh_log_level()
    try:

        def app(environ: object, start_response: object) -> list[bytes]:
            start_response("200 OK", [])  # type: ignore[operator]
            return [b"ok"]

        client = WerkzeugClient(IdempotencyMiddleware(app, store=MemoryStore()))
        secret = "customer-secret-key-0123456789"
        assert client.post("/pay", headers={"Idempotency-Key": secret}).get_data() == b"ok"
        assert client.post("/pay", headers={"Idempotency-Key": secret}).get_data() == b"ok"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(handler.records) < 2:
            time.sleep(0.01)
        messages = [r.getMessage() for r in handler.records]
        assert any("outcome=executed" in m for m in messages), messages
        assert any("outcome=replayed" in m for m in messages), messages
        assert all(r.name == "idempo" and r.levelno == logging.DEBUG for r in handler.records)
        assert not any(secret in m for m in messages), "raw keys never reach the logs"
        assert any("cust…(30)" in m for m in messages), messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        _refresh_log_level()
