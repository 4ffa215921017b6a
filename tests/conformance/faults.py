"""Fault cells of the conformance driver (issue 8), one per integration and durable store:
the store taken away, a server killed or paused mid-handler, a client that goes away.
Each runner takes (app, command, store) and returns None, a `Passed` note, or why it
failed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def proxied(store: str) -> AsyncIterator[StoreProxy]:
    """A `StoreProxy` in front of `store`, up for the block, taken down after it."""
    proxy = StoreProxy(STORE_ENV[store]())
    await proxy.up()
    try:
        yield proxy
    finally:
        await proxy.down()


async def away_while_handling(http: httpx.AsyncClient, base: str, proxy: StoreProxy, handler_ms: int, away_s: float) -> str | None:
    """Take the store away for `away_s` while a keyed handler of `handler_ms` runs: the
    client gets its response, the retry after recovery replays it, the handler ran once."""
    await http.post(base + "/reset")
    key = f"away-{uuid.uuid4().hex}"
    send = lambda: http.post(base + f"/slow?ms={handler_ms}", content=b"s", headers={"Idempotency-Key": key})
    running = asyncio.create_task(send())
    if not await until_count(http, base, 1):
        return "the handler never started"
    await proxy.down()
    await asyncio.sleep(away_s)
    await proxy.up()
    first = await running
    if first.status_code != 200 or first.text != f"slept:{handler_ms}":
        return f"the client did not get its response: {first.status_code} {first.text[:80]!r}"
    # A 503 with Retry-After while the app reconnects says "try again", as a 409 does.
    retry = await past_409(send, await send(), 15, also=(503,))
    if retry.headers.get("idempotency-replayed") != "true" or retry.content != first.content:
        return f"the retry was not a replay: {retry.status_code} {retry.text[:80]!r}"
    if (count := await counter(http, base)) != 1:
        return f"the handler ran {count} times"
    return None


async def run_store_down(app: str, command: list[str], store: str) -> str | None:
    """The store goes away (issue 8, B16, B17). At claim: 503 store-unavailable with
    Retry-After and the handler not run, then recovery once it is back. While a handler
    runs, back within persist_timeout: the client gets its response, the completion lands
    in the background, and the retry is a replay of that one execution."""
    async with proxied(store) as proxy:
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
                return await away_while_handling(http, base, proxy, handler_ms=1000, away_s=1.5)


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
    async with proxied(store) as proxy:
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
    """A client that goes away (B11) never gives its key back: the handler's work stands,
    and the retry replays it. Four ways to go: sixteen clients that close their sockets
    while the handler runs (each retry, sent at once, gets 409 until its first run ends),
    the client's own 100 ms timeout over a 500 ms handler, and a socket closed once the
    head of `/large?bytes=2000000` or of `/stream` arrived (the replay is omitted where the
    capture could not be finished, B12). Each time the handler ran once per key."""
    outcomes = []
    with shared_counter() as env:
        async with serving(command, store, {**env, "IDEMPO_LEASE_TTL_MS": "30000"}) as (_, base), client() as http:
            port = int(base.rsplit(":", 1)[1])
            full_stream = (await http.post(base + "/stream", content=b"d")).content

            def sender(path: str, key: str) -> Any:
                return lambda: http.post(base + path, content=b"d", headers={"Idempotency-Key": key})

            async def close_mid_handler(path: str, key: str) -> str | None:
                sock = await asyncio.to_thread(connect_and_send, port, raw_request(path.encode(), [(b"Idempotency-Key", key.encode())], b"d"))
                await asyncio.sleep(0.3)  # the handler is under way
                sock.close()
                return None

            async def time_out(path: str, key: str) -> str | None:
                try:
                    r = await http.post(base + path, content=b"d", headers={"Idempotency-Key": key}, timeout=0.1)
                    return f"the 100 ms timeout did not fire ({r.status_code})"
                except httpx.TimeoutException:
                    return None

            async def close_after_head(path: str, key: str) -> str | None:
                sock = await asyncio.to_thread(connect_and_send, port, raw_request(path.encode(), [(b"Idempotency-Key", key.encode())], b"d"))
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    got = await asyncio.to_thread(sock.recv, 4096)
                    if not got:
                        break
                    head += got
                sock.close()
                return None if head.startswith(b"HTTP/1.1 200") else f"the response did not start: {head[:60]!r}"

            async def replayed(key: str, path: str, expected: bytes | None, mid_handler: bool) -> str | None:
                """The retry: 409 while the first run goes on, then its replay."""
                send = sender(path, key)
                first = await send()
                if mid_handler and first.status_code != 409:
                    return f"the retry sent at once got {first.status_code} {first.text[:60]!r}, not 409"
                retry = await past_409(send, first, 10)
                if retry.status_code == 409:
                    return "the key was still in flight 10 s after the client left"
                if retry.headers.get("idempotency-replayed") != "true":
                    return f"the key was released: the retry ran the handler again ({retry.status_code} {retry.text[:60]!r})"
                if retry.headers.get("idempotency-replay") == "omitted":
                    # Only a body cut off by the framework may go unrecorded (B12).
                    return "omitted" if not mid_handler and not retry.content else f"omitted: {retry.text[:60]!r}"
                if expected is not None and retry.content != expected:
                    return f"the replay is {retry.text[:60]!r}, not the first run's response"
                return None

            ways = (
                ("mid-handler", "/execution?ms=1000", close_mid_handler, 16),
                ("client timeout", "/slow?ms=500", time_out, 1),
                ("after the head of /large", "/large?bytes=2000000", close_after_head, 1),
                ("after the head of /stream", "/stream", close_after_head, 1),
            )
            for what, path, leave, clients in ways:
                await http.post(base + "/reset")
                keys = [f"gone-{uuid.uuid4().hex}" for _ in range(clients)]
                for problem in await asyncio.gather(*(leave(path, k) for k in keys)):
                    if problem:
                        return f"{what}: {problem}"
                expected = {"/slow?ms=500": b"slept:500", "/large?bytes=2000000": b"x" * 2000000, "/stream": full_stream}.get(path)
                mid_handler = leave is close_mid_handler
                results = await asyncio.gather(*(replayed(k, path, expected, mid_handler) for k in keys))
                for result in results:
                    if result not in (None, "omitted"):
                        return f"{what}: {result}"
                if mid_handler:
                    # Each run says which execution it was: every key replays its own.
                    answers = sorted([(await sender(path, k)()).text for k in keys])
                    if answers != sorted(f"execution:{n}" for n in range(1, clients + 1)):
                        return f"{what}: the replays are {answers[:3]}…, not one execution each"
                if (count := await counter(http, base)) != clients:
                    return f"{what}: the handler ran {count} times for {clients} key(s)"
                outcomes.append(f"{what} {'omitted' if 'omitted' in results else 'replayed'}")
    return Passed(", ".join(outcomes))


async def run_short_lease(app: str, command: list[str], store: str) -> str | None:
    """A lease shorter than a store outage (B17): with a 1 s lease the store goes away for
    2 s while the handler runs. The client still gets its response, the completion lands
    once the store is back (the lapsed claim is still its holder's), and the retry after
    recovery replays it: the handler ran once."""
    async with proxied(store) as proxy:
        with shared_counter() as env:
            extra = {**env, "IDEMPO_STORE": proxy.url, "IDEMPO_LEASE_TTL_MS": "1000"}
            async with serving(command, store, extra) as (_, base), client() as http:
                return await away_while_handling(http, base, proxy, handler_ms=1500, away_s=2)
