"""B21: a MemoryStore made before a fork is one store per process afterwards (gunicorn
--preload workers each get their own, empty one). The worker that uses it says so, once."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytest
from idempo import MemoryStore
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client

from idempo_tests.conftest import key

FORKED = "made in another process"


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("201 Created", [])
    return [b"done"]


def warnings_in_child(mw: IdempotencyMiddleware, requests: int) -> int:
    """Fork; in the child send `requests` keyed requests and count the fork warnings the
    `idempo` logger got. The child reports through a pipe and leaves with os._exit."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        seen = 0
        try:

            class Count(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    nonlocal seen
                    seen += FORKED in record.getMessage()

            logger = logging.getLogger("idempo")
            logger.setLevel(logging.WARNING)
            logger.addHandler(Count())
            for i in range(requests):
                Client(mw).post("/pay", data=b"x", headers={"Idempotency-Key": key(f"forked-{i}")})
            deadline = time.monotonic() + 3  # events reach Python through a logging thread
            while not seen and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # a second warning, if any, would be here by now
        finally:
            os.write(write, str(seen).encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as r:
        return int(r.read() or "-1")


def test_b21_a_memory_store_used_after_a_fork_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="idempo")
    mw = IdempotencyMiddleware(app, store=MemoryStore())
    assert Client(mw).post("/pay", data=b"x", headers={"Idempotency-Key": key("parent")}).status_code == 201
    assert warnings_in_child(mw, requests=3) == 1, "the forked worker did not warn exactly once"
    time.sleep(0.2)
    assert not any(FORKED in r.getMessage() for r in caplog.records), "the creating process warned"
