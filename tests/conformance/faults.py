"""Fault cells of the conformance driver (issue 8), one per integration and durable store:
the store taken away, a server killed or paused mid-handler, a client that goes away.
Each runner takes (app, command, store) and returns None, a `Passed` note, or why it
failed."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from apps import STORE_ENV, Passed, client, free_port, kill_tree, log_of, raw_request, serving, shared_counter, signal_tree


async def past_409(send: Any, first: httpx.Response, seconds: float, also: tuple[int, ...] = ()) -> httpx.Response:
    """Send again while the answer is 409 (the key still in flight), or one of `also`, for
    up to `seconds`."""
    deadline = time.monotonic() + seconds
    answer = first
    while answer.status_code in (409, *also) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        answer = await send()
    return answer


async def counter(http: httpx.AsyncClient, base: str) -> int:
    return int((await http.get(base + "/counter")).json()["count"])


async def until_count(http: httpx.AsyncClient, base: str, n: int, seconds: float = 10) -> bool:
    """Wait until the handler has started its n-th execution."""
    deadline = time.monotonic() + seconds
    while await counter(http, base) < n:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class StoreProxy:
    """A TCP proxy in front of the store, so a test can take the store away and bring it
    back without touching the real server (issue 8): `down()` drops every connection and
    refuses new ones; `up()` listens again on the same port."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.target = (u.hostname or "127.0.0.1", u.port or (6379 if u.scheme.startswith("redis") else 5432))
        self.port = free_port()
        self.url = urlunsplit(u._replace(netloc=(f"{u.username}@" if u.username else "") + f"127.0.0.1:{self.port}"))
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            # The driver's loop is shutting down: drop the connection quietly.
            writer.transport.abort()
            up_writer.transport.abort()
        self.writers -= {writer, up_writer}


async def run_store_down(app: str, command: list[str], store: str) -> str | None:
    """The store goes away (issue 8, B16, B17). At claim: 503 store-unavailable with
    Retry-After and the handler not run, then recovery once it is back. While a handler
    runs, back within persist_timeout: the client gets its response, the completion lands
    in the background, and the retry is a replay of that one execution."""
    proxy = StoreProxy(STORE_ENV[store]())
    await proxy.up()
    try:
        with shared_counter() as env:
            async with serving(command, store, {**env, "IDEMPO_STORE": proxy.url}) as (_, base), client() as http:
                post = lambda path, key: http.post(base + path, content=b"b", headers={"Idempotency-Key": key})
                await http.post(base + "/reset")
                if (await post("/echo", f"warm-{uuid.uuid4().hex}")).status_code != 201:
                    return "the app did not work with the store up"
                await proxy.down()
                r = await post("/echo", f"down-{uuid.uuid4().hex}")
                problem = r.json().get("type", "") if r.headers.get("content-type", "").startswith("application/problem+json") else ""
                if r.status_code != 503 or not problem.endswith("store-unavailable") or not r.headers.get("retry-after"):
                    return f"store down at claim: {r.status_code} {r.headers.get('retry-after')!r} {r.text[:100]!r}"
                if await counter(http, base) != 1:
                    return "the handler ran while the store was down"
                await proxy.up()
                recovered = False
                for _ in range(40):
                    if (await post("/echo", f"back-{uuid.uuid4().hex}")).status_code == 201:
                        recovered = True
                        break
                    await asyncio.sleep(0.25)
                if not recovered:
                    return "no recovery after the store came back"
                # Down while the handler runs, back well within persist_timeout.
                await http.post(base + "/reset")
                key = f"during-{uuid.uuid4().hex}"
                running = asyncio.create_task(post("/slow?ms=1000", key))
                if not await until_count(http, base, 1):
                    return "the handler never started"
                await proxy.down()
                await asyncio.sleep(1.5)
                await proxy.up()
                first = await running
                if first.status_code != 200:
                    return f"the client did not get its response: {first.status_code} {first.text[:80]!r}"
                send = lambda: post("/slow?ms=1000", key)
                # A 503 with Retry-After while the app reconnects says "try again", as a 409 does.
                retry = await past_409(send, await send(), 15, also=(503,))
                if retry.headers.get("idempotency-replayed") != "true" or retry.content != first.content:
                    return f"the retry was not a replay: {retry.status_code} {retry.text[:80]!r}"
                if (count := await counter(http, base)) != 1:
                    return f"the handler ran {count} times"
        return None
    finally:
        await proxy.down()


async def run_killed(app: str, command: list[str], store: str) -> str | None:
    """A server killed with SIGKILL while its handler runs (issue 8, B10): a retry to a new
    process of the same app gets 409 while the dead holder's lease lives, runs the handler
    exactly once after the lease expires, and is replayed after that; the shared counter
    shows the killed execution and that one, nothing else."""
    lease_ms, handler_ms = 8000, 2500
    path = f"/slow?ms={handler_ms}"
    headers = {"Idempotency-Key": f"killed-{uuid.uuid4().hex}"}
    with shared_counter() as env:
        extra = {**env, "IDEMPO_LEASE_TTL_MS": str(lease_ms)}
        async with client() as http:
            async with serving(command, store, extra) as (doomed_app, base):
                if (await http.post(base + "/reset")).status_code != 204:
                    return "POST /reset failed"
                doomed = asyncio.create_task(http.post(base + path, content=b"once", headers=headers))
                claimed_at = time.monotonic()
                if not await until_count(http, base, 1):
                    return "the handler never started"
                kill_tree(doomed_app.pid)
                try:
                    r = await doomed
                    return f"the killed request was answered: {r.status_code}"
                except httpx.HTTPError:
                    pass
            async with serving(command, store, extra) as (_, base):
                send = lambda: http.post(base + path, content=b"once", headers=headers)
                retry = await send()
                if time.monotonic() - claimed_at < lease_ms / 1000 - 0.5 and retry.status_code != 409:
                    return f"a retry while the dead holder's lease lived got {retry.status_code}, not 409"
                retry = await past_409(send, retry, claimed_at + lease_ms / 1000 + 10 - time.monotonic())
                if retry.status_code != 200 or retry.headers.get("idempotency-replayed") == "true":
                    return f"after the lease expired the retry got {retry.status_code} {retry.text[:80]!r}, not an execution"
                replay = await send()
                if replay.headers.get("idempotency-replayed") != "true" or replay.content != retry.content:
                    return f"the next retry was not a replay: {replay.status_code}"
                if (count := await counter(http, base)) != 2:
                    return f"the handler ran {count} times (expected the killed run and one more)"
    return None


async def run_fail_open(app: str, command: list[str], store: str) -> str | None:
    """on_store_error = fail_open (B16): with the store gone a keyed request runs the
    handler unprotected (so a retry runs it again) and the app logs a warning saying so."""
    proxy = StoreProxy(STORE_ENV[store]())
    await proxy.up()
    try:
        with shared_counter() as env:
            extra = {**env, "IDEMPO_STORE": proxy.url, "IDEMPO_ON_STORE_ERROR": "fail_open"}
            async with serving(command, store, extra) as (proc, base), client() as http:
                post = lambda key: http.post(base + "/echo", content=b"open", headers={"Idempotency-Key": key})
                await http.post(base + "/reset")
                if (await post(f"warm-{uuid.uuid4().hex}")).status_code != 201:
                    return "the app did not work with the store up"
                await proxy.down()
                key = f"open-{uuid.uuid4().hex}"
                answers = [await post(key), await post(key)]
                if [r.status_code for r in answers] != [201, 201] or any(r.content != b"open" for r in answers):
                    return f"with the store down: {[(r.status_code, r.text[:60]) for r in answers]}"
                if any(r.headers.get("idempotency-replayed") for r in answers):
                    return "a response was marked replayed without a store"
                if (count := await counter(http, base)) != 3:
                    return f"the handler ran {count} times, expected 3 (warm-up and two unprotected runs)"
                deadline = time.monotonic() + 5
                while "unprotected" not in log_of(proc):
                    if time.monotonic() > deadline:
                        return f"no warning logged; stderr ends {log_of(proc)[-200:]!r}"
                    await asyncio.sleep(0.1)
        return None
    finally:
        await proxy.down()


async def run_takeover(app: str, command: list[str], store: str) -> str | None:
    """Lease takeover across processes (B10): process A claims a key and is paused
    (SIGSTOP) past its lease; process B takes the key over and executes; A resumes while B
    runs and finishes its handler, but its completion carries a stale fencing token and is
    rejected. Every retry replays B's response; the shared counter shows the two runs."""
    lease_ms, handler_ms = 2000, 3000
    path = f"/execution?ms={handler_ms}"
    headers = {"Idempotency-Key": f"takeover-{uuid.uuid4().hex}"}
    with shared_counter() as env:
        extra = {**env, "IDEMPO_LEASE_TTL_MS": str(lease_ms)}
        async with (
            serving(command, store, extra) as (a, base_a),
            serving(command, store, extra) as (_, base_b),
            client(timeout=60) as http,
        ):
            post = lambda base: http.post(base + path, content=b"t", headers=headers)
            await http.post(base_b + "/reset")
            stale = asyncio.create_task(post(base_a))
            if not await until_count(http, base_b, 1):
                return "A's handler never started"
            signal_tree(a.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(lease_ms / 1000 + 1.0)
                owner = asyncio.create_task(post(base_b))
                if not await until_count(http, base_b, 2, seconds=5):
                    early = await owner if owner.done() else None
                    return f"B did not take over the expired lease ({early.status_code if early else 'no answer'})"
                await asyncio.sleep(0.3)
            finally:
                signal_tree(a.pid, signal.SIGCONT)
            stale_answer, owner_answer = await stale, await owner
            if stale_answer.status_code != 200 or stale_answer.text != "execution:1":
                return f"A's client got {stale_answer.status_code} {stale_answer.text[:60]!r}, not its own response"
            if owner_answer.status_code != 200 or owner_answer.text != "execution:2":
                return f"B's client got {owner_answer.status_code} {owner_answer.text[:60]!r}"
            for base in (base_a, base_b):
                retry = await post(base)
                if retry.headers.get("idempotency-replayed") != "true" or retry.text != "execution:2":
                    return f"a retry got {retry.status_code} {retry.text[:60]!r}, not B's response replayed"
            if (count := await counter(http, base_b)) != 2:
                return f"the handler ran {count} times"
    return None


def connect_and_send(port: int, raw: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(raw)
    return sock


async def run_disconnect(app: str, command: list[str], store: str) -> str | None:
    """A client that goes away mid-request (B11): while the handler runs, and after the
    response head of a stream. Each time the key ends completed (the handler finished: a
    retry replays it) or released (the handler was cancelled: a retry runs it again), and
    never stays in flight with nobody to finish it: the lease is 30 s, and a retry must
    get its answer within a few seconds of the handler's end."""
    lease_ms, handler_ms = 30000, 1000
    outcomes = []
    with shared_counter() as env:
        async with serving(command, store, {**env, "IDEMPO_LEASE_TTL_MS": str(lease_ms)}) as (_, base), client() as http:
            port = int(base.rsplit(":", 1)[1])
            for what, path, stream in (("mid-handler", f"/execution?ms={handler_ms}", False), ("mid-stream", "/stream", True)):
                await http.post(base + "/reset")
                key = f"gone-{uuid.uuid4().hex}"
                raw = raw_request(path.encode(), [(b"Idempotency-Key", key.encode())], b"d")
                sock = await asyncio.to_thread(connect_and_send, port, raw)
                if stream:
                    # Wait for the response head, then go away while events still flow.
                    got = await asyncio.to_thread(sock.recv, 256)
                    if not got.startswith(b"HTTP/1.1 200"):
                        return f"{what}: the stream did not start: {got[:60]!r}"
                elif not await until_count(http, base, 1):
                    return f"{what}: the handler never started"
                sock.close()
                gone_at = time.monotonic()
                send = lambda path=path, key=key: http.post(base + path, content=b"d", headers={"Idempotency-Key": key})
                retry = await past_409(send, await send(), handler_ms / 1000 + 5)
                if retry.status_code == 409:
                    return f"{what}: the key was still in flight {time.monotonic() - gone_at:.1f} s after the client left"
                if retry.status_code != 200:
                    return f"{what}: the retry got {retry.status_code} {retry.text[:80]!r}"
                replayed = retry.headers.get("idempotency-replayed") == "true"
                count = await counter(http, base)
                if count != (1 if replayed else 2):
                    return f"{what}: retry {'replayed' if replayed else 'executed'} but the handler ran {count} times"
                if replayed and not stream and retry.text != "execution:1":
                    return f"{what}: the replay is {retry.text[:60]!r}, not the first execution's response"
                outcomes.append(f"{what} {'completed' if replayed else 'released'}")
    return Passed(", ".join(outcomes))
