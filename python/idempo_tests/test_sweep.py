"""B23: expired PostgreSQL rows are deleted by a background sweep every ``sweep_interval``,
with two worker processes running against one table; ``sweep_interval=0`` turns it off."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from idempo_tests.conftest import env

WORKER = """
import sys, time
from idempo import PostgresStore
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client

url, table, interval, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
def app(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"done"]
client = Client(IdempotencyMiddleware(app, store=PostgresStore(url, table=table, sweep_interval=interval), ttl=ttl))
for n in range(10):
    r = client.post("/pay", data=b"x", headers={"Idempotency-Key": f"{table}-{n}-{time.time()}"})
    assert (r.status_code, r.get_data()) == (201, b"done")
    r.close()
print("stored", flush=True)
time.sleep(30)
"""


def psql_count(url: str, table: str) -> int:
    which = ["bash", "-c", "command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1"]
    psql = subprocess.run(which, capture_output=True, text=True).stdout.strip()
    out = subprocess.run([psql, url, "-q", "-A", "-t", "-c", f"SELECT count(*) FROM {table}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


# Long enough that the first worker's rows are still there once the second, started on a
# loaded machine, has stored its own (at 0.2 s they were once swept before they were counted).
TTL = 2.0


@pytest.mark.parametrize("interval", [0.3, 0.0], ids=["every 0.3 s", "off"])
def test_b23_two_processes_sweep_expired_rows_unless_turned_off(interval: float) -> None:
    url = env("DATABASE_URL", "PostgreSQL")
    table = f"sweep_{uuid.uuid4().hex[:12]}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, table, str(interval), str(TTL)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "stored", "a worker failed"
        expired = time.monotonic() + TTL
        assert psql_count(url, table) == 20
        left = 20
        while left and time.monotonic() < expired + 1.5:
            time.sleep(0.05)
            left = psql_count(url, table)
        if interval:
            assert left == 0, f"{left} expired rows left {time.monotonic() - expired:.1f} s after expiry"
        else:
            assert left == 20, "rows were swept with the sweep turned off"
    finally:
        for w in workers:
            w.kill()
            w.wait()
        subprocess.run(["bash", "-c", f'psql "{url}" -q -c "DROP TABLE IF EXISTS {table}"'], capture_output=True)
