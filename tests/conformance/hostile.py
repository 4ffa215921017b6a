"""Hostile input over HTTP through every integration (issue 8): keys of every invalid
shape, header floods, 100 MB bodies, slow-drip bodies, non-UTF-8 paths and headers, JSON
bombs. Every answer is a 4xx (a problem response from the middleware, or the server's own
refusal) or a closed connection; whatever is accepted is stored and replayed like any
request; the app keeps serving throughout, and its memory stays bounded.

Requests are written on raw sockets: no HTTP client would send most of them."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
import uuid
from dataclasses import dataclass

from apps import Passed, raw_request, rss_of_tree, serving

HUNDRED_MB = 100 * 1024 * 1024
# What the app may grow by over the whole run; one 100 MB body held in memory would
# break it on its own.
MEMORY_BOUND = 64 * 1024 * 1024


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without answering
    head: bytes
    body: bytes

    def problem_code(self) -> str | None:
        if b"application/problem+json" not in self.head.lower():
            return None
        try:
            return str(json.loads(self.body).get("code"))
        except ValueError:
            return None

    def replayed(self) -> bool:
        return b"\r\nidempotency-replayed: true" in self.head.lower()

    def __str__(self) -> str:
        return "closed without an answer" if self.status is None else f"{self.status} {self.body[:80]!r}"


def parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Answer(None, head, body)
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return Answer(status, head, body)


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def exchange(port: int, raw: bytes, timeout: float = 15) -> Answer:
    """Send `raw` and read until the server closes the connection (every request here
    asks for Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        data = bytearray()
        try:
            sock.sendall(raw)
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return parse(bytes(data))


def key_header(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"Idempotency-Key", value)]


def fresh() -> bytes:
    return f"h-{uuid.uuid4().hex}".encode()


async def call(port: int, raw: bytes) -> Answer:
    return await asyncio.to_thread(exchange, port, raw)


class Run:
    def __init__(self, port: int) -> None:
        self.port = port

    async def count(self) -> int:
        answer = await call(self.port, b"GET /counter HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return int(json.loads(answer.body)["count"])

    async def alive(self, after: str) -> str | None:
        """The app still answers a plain keyed request, and it runs once."""
        body = b"still here"
        answer = await call(self.port, raw_request(b"/echo", key_header(fresh()), body))
        if answer.status != 201 or answer.body != body:
            return f"after {after} the app answered {answer}"
        return None

    async def refused(self, what: str, raw: bytes, problem: str | None = None) -> str | None:
        """`raw` gets a 4xx (with `problem` as its code when the middleware answered) or a
        closed connection; the handler does not run."""
        before = await self.count()
        answer = await call(self.port, raw)
        if answer.status is not None and not 400 <= answer.status < 500:
            return f"{what}: answered {answer}"
        code = answer.problem_code()
        if problem and code is not None and code != problem:
            return f"{what}: problem {code!r}, expected {problem!r}"
        if (after := await self.count()) != before:
            return f"{what}: the handler ran ({before} -> {after})"
        return await self.alive(what)

    async def accepted_or_refused(self, what: str, raw: bytes) -> str | None:
        """`raw` is refused (4xx or closed), or it runs and the same bytes again are a
        replay of it (a 5xx from the app is released, so the same bytes run again)."""
        first = await call(self.port, raw)
        if first.status is None or 400 <= first.status < 500:
            return await self.alive(what)
        again = await call(self.port, raw)
        if first.status < 300 and (not again.replayed() or again.body != first.body or again.status != first.status):
            return f"{what}: first {first}, the same request again {again} (not a replay)"
        if first.status >= 500 and again.replayed():
            return f"{what}: a {first.status} was stored and replayed"
        return await self.alive(what)


async def bad_keys(run: Run) -> str | None:
    shapes = {
        "empty": b"",
        "spaces": b"   ",
        "empty quoted": b'""',
        "unterminated": b'"abc',
        "bad escape": b'"a\\qb"',
        "list": b'"a", "b"',
        "256 characters": b"k" * 256,
        "control character": b"k\x01ey",
        "non-ASCII bytes": b"\xff\xfe\xfd",
        "UTF-8 in quotes": b'"caf\xc3\xa9"',
        "64 KB": b"k" * 65536,
    }
    for name, value in shapes.items():
        if why := await run.refused(f"key {name}", raw_request(b"/echo", key_header(value), b"x"), "invalid-key"):
            return why
    twice = raw_request(b"/echo", [(b"Idempotency-Key", b"one"), (b"Idempotency-Key", b"two")], b"x")
    return await run.refused("key header twice", twice, "invalid-key")


async def header_floods(run: Run) -> str | None:
    many = [(f"X-Flood-{i}".encode(), b"v" * 64) for i in range(5000)]
    if why := await run.refused("5000 headers", raw_request(b"/echo", key_header(fresh()) + many, b"x")):
        return why
    huge = [(b"X-Huge", b"v" * (1024 * 1024))]
    return await run.refused("a 1 MB header", raw_request(b"/echo", key_header(fresh()) + huge, b"x"))


def push_body(port: int, chunked: bool) -> tuple[Answer, int]:
    """A keyed request announcing 100 MB (by Content-Length, or chunked), its body sent
    while watching for an answer. Returns the answer and how much was sent by then."""
    headers = key_header(fresh()) + [(b"Transfer-Encoding", b"chunked") if chunked else (b"Content-Length", str(HUNDRED_MB).encode())]
    head = raw_request(b"/echo", headers)
    piece = b"x" * 65536
    frames = [b"10000\r\n" + piece + b"\r\n" if chunked else piece] * (HUNDRED_MB // len(piece))
    if chunked:
        frames.append(b"0\r\n\r\n")
    sent = 0
    data = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = memoryview(b"")
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 15:
            want_write = bool(frames) or len(pending) > 0
            readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 0.5)
            try:
                if readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    idle_since = time.monotonic()
                elif writable:
                    if not pending:
                        frame = frames.pop(0)
                        pending = memoryview(frame)
                        sent += len(piece) if len(frame) >= len(piece) else 0
                    n = sock.send(pending)
                    pending = pending[n:]
                    idle_since = time.monotonic()
            except (ConnectionResetError, BrokenPipeError):
                break
            except BlockingIOError:
                pass
    return parse(bytes(data)), sent


async def big_bodies(run: Run) -> str | None:
    notes = []
    for chunked in (False, True, False):
        what = "100 MB chunked" if chunked else "100 MB by Content-Length"
        before = await run.count()
        answer, sent = await asyncio.to_thread(push_body, run.port, chunked)
        if sent >= HUNDRED_MB:
            return f"{what}: the whole body was sent before any answer ({answer})"
        if answer.status is not None and answer.status != 413:
            return f"{what}: answered {answer}"
        if answer.status == 413 and answer.problem_code() not in (None, "body-too-large"):
            return f"{what}: problem {answer.problem_code()!r}"
        if await run.count() != before:
            return f"{what}: the handler ran"
        if why := await run.alive(what):
            return why
        notes.append(f"{answer.status or 'closed'} after {sent / 1e6:.1f} MB")
    return Passed("; ".join(notes))


def drip(port: int, body: bytes, every: float) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = raw_request(b"/echo", key_header(fresh()), body)
        sock.sendall(head[: len(head) - len(body)])
        for byte in body:
            time.sleep(every)
            try:
                sock.sendall(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                break
        data = bytearray()
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return parse(bytes(data))


async def slow_drip(run: Run) -> str | None:
    """A body dripped a byte every 100 ms for 4 s, and several at once: other clients are
    served meanwhile, and the drip gets its answer (or the server cuts it off)."""
    body = b"d" * 40
    drips = [asyncio.create_task(asyncio.to_thread(drip, run.port, body, 0.1)) for _ in range(4)]
    await asyncio.sleep(0.5)
    for _ in range(5):
        started_at = time.monotonic()
        if why := await run.alive("a slow drip started"):
            return why
        if (took := time.monotonic() - started_at) > 2:
            return f"a request took {took:.1f} s while bodies were dripping"
        await asyncio.sleep(0.3)
    for answer in await asyncio.gather(*drips):
        if answer.status is not None and answer.status != 201 and not 400 <= answer.status < 500:
            return f"slow drip: answered {answer}"
        if answer.status == 201 and answer.body != body:
            return f"slow drip: echoed {answer.body[:60]!r}"
    return await run.alive("slow drips")


async def non_utf8(run: Run) -> str | None:
    cases = {
        "path": raw_request(b"/echo/\xff\xfe", key_header(fresh()), b"x"),
        "query": raw_request(b"/echo?q=\xff\xfe", key_header(fresh()), b"x"),
        "tenant header": raw_request(b"/echo", key_header(fresh()) + [(b"X-Tenant", b"\xff\xfe\xc3")], b"x"),
        "other header": raw_request(b"/echo", key_header(fresh()) + [(b"X-Note", b"caf\xe9 \xc3\x28")], b"x"),
        "body": raw_request(b"/echo", key_header(fresh()) + [(b"Content-Type", b"text/plain; charset=utf-8")], b"\xff\xfe\xc3\x28"),
    }
    for name, raw in cases.items():
        if why := await run.accepted_or_refused(f"non-UTF-8 {name}", raw):
            return why
    return None


async def json_bombs(run: Run) -> str | None:
    json_type = [(b"Content-Type", b"application/json")]
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_objects = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    wide = b"{" + b",".join(b'"a":0' for _ in range(150_000)) + b"}"
    for name, bomb in (("100 000 nested arrays", deep), ("50 000 nested objects", deep_objects), ("150 000 repeated keys", wide)):
        if why := await run.accepted_or_refused(f"JSON bomb ({name})", raw_request(b"/echo", key_header(fresh()) + json_type, bomb)):
            return why
    return None


CASES = (bad_keys, header_floods, big_bodies, slow_drip, non_utf8, json_bombs)


async def run_hostile(app: str, command: list[str], store: str) -> str | None:
    async with serving(command, store) as (proc, base):
        run = Run(int(base.rsplit(":", 1)[1]))
        if why := await run.alive("start-up"):
            return why
        baseline = rss_of_tree(proc.pid)
        notes = []
        for case in CASES:
            outcome = await case(run)
            if outcome is not None and not isinstance(outcome, Passed):
                return f"{case.__name__}: {outcome}"
            if outcome:
                notes.append(outcome)
            if proc.poll() is not None:
                return f"{case.__name__}: the app exited with {proc.returncode}"
        grown = rss_of_tree(proc.pid) - baseline
        if grown > MEMORY_BOUND:
            return f"the app grew by {grown / 1e6:.0f} MB"
        return Passed(f"{'; '.join(notes)}; memory +{grown / 1e6:.0f} MB")
