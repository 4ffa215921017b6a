"""Starting, stopping and watching the fixture apps of tests/fixtures/apps.json: shared by
the conformance driver, the fault cells (faults.py) and the hostile-input cells
(hostile.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

ROOT = Path(__file__).resolve().parents[2]


class Failure(Exception):
    pass


class Passed(str):
    """A cell that passed, with a word on how (printed after `pass`)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listener_inodes(port: int) -> set[str]:
    """The socket inodes listening on 127.0.0.1:port (or any address), from /proc/net/tcp."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def owns_listener(pid: int, port: int) -> bool:
    """Whether the process or one under it holds the socket listening on the port, so that a
    server another suite started on the same port is never taken for this one."""
    inodes = {f"socket:[{inode}]" for inode in listener_inodes(port)}
    if not inodes:
        return False
    for p in tree(pid):
        try:
            fds = list(Path(f"/proc/{p}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return True
            except OSError:
                pass
    return False


def wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"the app exited with {proc.returncode}")
        if owns_listener(proc.pid, port):
            return
        time.sleep(0.05)
    raise Failure(f"the app did not listen on {port}")


STORE_ENV = {"memory": lambda: "memory", "redis": lambda: os.environ["REDIS_URL"], "postgres": lambda: os.environ["DATABASE_URL"]}

# The matrix's encrypted stores (B24): `redis-encrypted` is the Redis of `redis` with every
# app given these keys (IDEMPO_ENCRYPTION_KEYS), and so on.
ENCRYPTED = "-encrypted"
MATRIX_KEYS = "matrix:" + base64.b64encode(bytes(range(32))).decode()


def store_env(store: str) -> dict[str, str]:
    """The fixture variables that put an app on `store`."""
    if store.endswith(ENCRYPTED):
        return {"IDEMPO_STORE": STORE_ENV[store[: -len(ENCRYPTED)]](), "IDEMPO_ENCRYPTION_KEYS": MATRIX_KEYS}
    return {"IDEMPO_STORE": STORE_ENV[store]()}


def start(command: list[str], store: str, extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start an app on a free port with only the fixture variables (tests/fixtures/README.md; plus `extra`). Its stderr
    goes to a file (`log_of`), never to a pipe nobody drains."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "IDEMPO_REQUIRED": "0", "IDEMPO_TTL_MS": "5000"}
    for name in ("IDEMPO_COUNTER_FILE", "WORKERS", "IDEMPO_ON_STORE_ERROR", "IDEMPO_LEASE_TTL_MS", "IDEMPO_SCOPE", "IDEMPO_ENCRYPTION_KEYS"):
        env.pop(name, None)
    env.update(store_env(store))
    env.update(extra or {})
    log = tempfile.NamedTemporaryFile(prefix="idempo-app-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([str(ROOT / command[0]), *command[1:]], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    proc.log_path = log.name  # type: ignore[attr-defined]
    return proc, port


def log_of(proc: subprocess.Popen[bytes]) -> str:
    """What the app has written to stderr so far."""
    try:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
    Path(proc.log_path).unlink(missing_ok=True)  # type: ignore[attr-defined]


async def started(proc: subprocess.Popen[bytes], port: int) -> str | None:
    """None once the app listens, else why it did not start."""
    try:
        await asyncio.to_thread(wait_for, port, proc)
        return None
    except Failure as e:
        err = log_of(proc)[-400:] if proc.poll() is not None else ""
        return f"app did not start: {e} {err}"


async def listening(command: list[str], store: str, extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """`start`, then wait until the app listens. The port is chosen before the app binds it,
    so a suite running beside this one can take it in between: an app that exits saying its
    address is in use is started again on another port. Raises Failure when it does not start."""
    for attempt in range(3):
        proc, port = start(command, store, extra)
        why = await started(proc, port)
        if why is None:
            return proc, port
        stop(proc)
        if attempt == 2 or not any(s in why.lower() for s in ("in use", "eaddrinuse")):
            raise Failure(why)
    raise AssertionError("unreachable")


def tree(pid: int) -> list[int]:
    """A process and every process under it (gunicorn's master and its worker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for child in children for p in tree(int(child)))]


def signal_tree(pid: int, sig: signal.Signals) -> None:
    for p in tree(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it."""
    signal_tree(pid, signal.SIGKILL)


def rss_of_tree(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


@contextlib.asynccontextmanager
async def serving(command: list[str], store: str, extra: dict[str, str] | None = None) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """The app started on a free port, as (process, base URL); stopped afterwards. Raises
    Failure when it does not start."""
    proc, port = await listening(command, store, extra)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextlib.asynccontextmanager
async def fleet_of(apps: dict[str, Any], names: list[str], store: str) -> AsyncIterator[dict[str, int]]:
    """Every app of `names` started on `store`, as {name: port}; all stopped afterwards.
    Raises Failure (naming the app) when one does not start."""
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name in names:
            try:
                procs[name] = await listening(apps[name]["command"], store)
            except Failure as why:
                raise Failure(f"{name}: {why}") from None
        yield {name: port for name, (_, port) in procs.items()}
    finally:
        for proc, _ in procs.values():
            stop(proc)


@contextlib.contextmanager
def shared_counter() -> Iterator[dict[str, str]]:
    """The environment that makes every process of an app count in one file."""
    with tempfile.TemporaryDirectory() as tmp:
        yield {"IDEMPO_COUNTER_FILE": str(Path(tmp) / "count")}


def client(timeout: float = 30) -> httpx.AsyncClient:
    """A client opening a connection per request, as separate retrying clients would."""
    import httpx  # here, so that make soak's stdlib-only scripts can use this module

    return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))


def raw_request(path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A POST as bytes on the wire, any bytes allowed (no HTTP client sends most of what
    the hostile cells do). Content-Length is added unless the headers frame the body."""
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if not any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in headers):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
