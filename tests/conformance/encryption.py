"""The encryption cell (B24), one per integration and durable store. Through the fixture
app's IDEMPO_ENCRYPTION_KEYS, and reading and writing Redis or PostgreSQL directly:

- a marker in a response body is in the stored bytes without encryption and not with it;
- one byte changed in a sealed record, or a whole entry copied to another key's id, gets
  503 and the handler does not run again, and the app keeps serving (without encryption
  the copied entry replays to the other key: what encryption closes); a tampered record
  is refused under `on_store_error = fail_open` too;
- rotation: records sealed under k1 replay once k2 is put first and new ones are sealed
  under k2; with k1 removed its records answer 503 and the log names k1; a record written
  before encryption was turned on replays throughout;
- the app warns once that fingerprints are not keyed.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import raw_store
from apps import Failure, Passed, client, log_of, serving, shared_counter
from faults import counter

TENANT = "enc"
WARNING = "set fingerprint_secret"


def keys(*ids: str) -> str:
    """IDEMPO_ENCRYPTION_KEYS for `ids`, each with a fresh random key (kept per id)."""
    return ",".join(f"{i}:{KEYS.setdefault(i, base64.b64encode(os.urandom(32)).decode())}" for i in ids)


KEYS: dict[str, str] = {}


class Cell:
    def __init__(self, app: str, command: list[str], store: str, http: httpx.AsyncClient, env: dict[str, str]) -> None:
        self.command, self.store, self.http, self.env = command, store, http, env
        self.tag = f"{app[:4]}{uuid.uuid4().hex[:6]}"

    @asynccontextmanager
    async def app(self, encryption_keys: str | None, **more: str) -> AsyncIterator[tuple[str, object]]:
        extra = {**self.env, **more, **({"IDEMPO_ENCRYPTION_KEYS": encryption_keys} if encryption_keys else {})}
        async with serving(self.command, self.store, extra) as (proc, base):
            yield base, proc

    async def post(self, base: str, key: str, body: str) -> httpx.Response:
        headers = {"Idempotency-Key": key, "X-Tenant": TENANT, "Content-Type": "text/plain"}
        return await self.http.post(f"{base}/echo", content=body.encode(), headers=headers)

    def key(self, label: str) -> str:
        return f"{self.tag}-{label}"

    async def raw(self, key: str) -> bytes:
        got = await asyncio.to_thread(raw_store.read_record, self.store, raw_store.record_id(TENANT, key))
        if got is None:
            raise Failure(f"no record stored for {key}")
        return got


def expect(ok: bool, why: str) -> None:
    if not ok:
        raise Failure(why)


def replayed(r: httpx.Response, body: str) -> bool:
    return r.headers.get("idempotency-replayed") == "true" and r.text == body


def refused(r: httpx.Response) -> bool:
    return r.status_code == 503 and "store-unavailable" in r.text


async def marker_and_tampering(c: Cell) -> None:
    k1 = c.key("k1")
    # Plain: the marker is there to be read, and a copied entry replays to another key.
    async with c.app(None) as (base, _):
        marker = f"card-4242-{uuid.uuid4().hex}"
        await c.post(base, c.key("plain"), marker)
        expect(marker.encode() in await c.raw(c.key("plain")), "without encryption the marker is not in the store")
        await c.post(base, c.key("plain-from"), "pay 1")
        raw_store_copy(c, "plain-from", "plain-to")
        expect(replayed(await c.post(base, c.key("plain-to"), "pay 1"), "pay 1"), "a copied plain entry did not replay")
    async with c.app(keys(k1)) as (base, _):
        marker = f"card-4242-{uuid.uuid4().hex}"
        first = await c.post(base, c.key("sealed"), marker)
        expect(first.status_code == 201, f"first request: {first.status_code}")
        stored = await c.raw(c.key("sealed"))
        expect(marker.encode() not in stored, "the marker is in the store's bytes with encryption on")
        expect(stored.startswith(b"IDR\x02" + bytes([len(k1)]) + k1.encode()), f"not sealed under {k1}: {stored[:20]!r}")
        expect(replayed(await c.post(base, c.key("sealed"), marker), marker), "the sealed record did not replay")
        runs = await counter(c.http, base)
        altered = bytearray(stored)
        altered[-1] ^= 1
        await asyncio.to_thread(raw_store.write_record, c.store, raw_store.record_id(TENANT, c.key("sealed")), bytes(altered))
        r = await c.post(base, c.key("sealed"), marker)
        expect(refused(r), f"a tampered record answered {r.status_code} {r.text[:80]!r}")
        await c.post(base, c.key("from"), "pay 2")
        raw_store_copy(c, "from", "to")
        r = await c.post(base, c.key("to"), "pay 2")
        expect(refused(r), f"a record copied to another key answered {r.status_code} {r.text[:80]!r}")
        expect(await counter(c.http, base) == runs + 1, "the handler ran on a tampered or copied record")
        fresh = await c.post(base, c.key("after"), "pay 3")
        expect(fresh.status_code == 201 and fresh.text == "pay 3", f"the app stopped serving: {fresh.status_code}")


async def fail_open_refuses_too(c: Cell) -> None:
    """Failing open is for a store that cannot answer: a tampered record the store returned
    shows the key ran, and is refused under fail_open as well."""
    async with c.app(keys(c.key("k1")), IDEMPO_ON_STORE_ERROR="fail_open") as (base, _):
        await c.post(base, c.key("open"), "pay 4")
        runs = await counter(c.http, base)
        altered = bytearray(await c.raw(c.key("open")))
        altered[-1] ^= 1
        await asyncio.to_thread(raw_store.write_record, c.store, raw_store.record_id(TENANT, c.key("open")), bytes(altered))
        r = await c.post(base, c.key("open"), "pay 4")
        expect(refused(r), f"fail_open answered a tampered record {r.status_code} {r.text[:80]!r}")
        expect(await counter(c.http, base) == runs, "fail_open ran the handler again on a tampered record")


def raw_store_copy(c: Cell, source: str, target: str) -> None:
    raw_store.copy_entry(c.store, raw_store.record_id(TENANT, c.key(source)), raw_store.record_id(TENANT, c.key(target)))


async def rotation(c: Cell) -> None:
    k1, k2 = c.key("k1"), c.key("k2")
    async with c.app(None) as (base, _):
        runs = await counter(c.http, base)
        await c.post(base, c.key("before"), "plain")
    async with c.app(keys(k1)) as (base, _):
        await c.post(base, c.key("under-k1"), "one")
    async with c.app(keys(k2, k1)) as (base, _):
        for label, body in (("under-k1", "one"), ("before", "plain")):
            expect(replayed(await c.post(base, c.key(label), body), body), f"{body!r} did not replay after k2 came first")
        await c.post(base, c.key("under-k2"), "two")
        expect((await c.raw(c.key("under-k2"))).startswith(b"IDR\x02" + bytes([len(k2)]) + k2.encode()), "not sealed under k2")
    async with c.app(keys(k2)) as (base, proc):
        for label, body in (("under-k2", "two"), ("before", "plain")):
            expect(replayed(await c.post(base, c.key(label), body), body), f"{body!r} did not replay once k1 was gone")
        r = await c.post(base, c.key("under-k1"), "one")
        expect(refused(r), f"a record under a removed key answered {r.status_code} {r.text[:80]!r}")
        log = await until_logged(proc, k1)
        expect(k1 in log, f"the log does not name {k1}: {log[-400:]!r}")
        expect(log.count(WARNING) == 1, f"warned {log.count(WARNING)} times about unkeyed fingerprints")
        done = await counter(c.http, base) - runs
        expect(done == 3, f"{done} executions for three distinct requests")


async def until_logged(proc: object, text: str, seconds: float = 5) -> str:
    """The app's log once it holds `text` (a host's logger may write a moment later)."""
    for _ in range(int(seconds / 0.1)):
        log = log_of(proc)  # type: ignore[arg-type]
        if text in log:
            return log
        await asyncio.sleep(0.1)
    return log_of(proc)  # type: ignore[arg-type]


async def run_encryption(app: str, command: list[str], store: str) -> str | None:
    # One execution counter for the cell's successive apps (a file, new and at zero).
    with shared_counter() as env:
        async with client() as http:
            cell = Cell(app, command, store, http, env)
            await marker_and_tampering(cell)
            await fail_open_refuses_too(cell)
            await rotation(cell)
    return Passed("marker hidden; tampered and copied records refused, fail_open too; rotation")
