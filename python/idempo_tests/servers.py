"""Real servers for the tests that need them: uvicorn in the test's own event loop,
waitress in a thread, and fixture apps in subprocesses (uvicorn, gunicorn)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until something listens on the port; with `proc`, until that process does (a server
    another suite started on the same port is never taken for it)."""
    from apps import owns_listener  # tests/conformance, on the path (conftest.py)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if owns_listener(proc.pid, port):
                return
        else:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@asynccontextmanager
async def uvicorn_in_loop(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn inside the current event loop."""
    # The socket is bound here and handed over, so no other suite running beside this one
    # can take the port between choosing it and listening on it.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def waitress_in_thread(app: Any, threads: int = 16) -> Iterator[str]:
    """Serve a WSGI app with waitress (a threaded production server) in a thread."""
    import waitress.server

    # Port 0: waitress binds at once and says which port it got.
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=threads, backlog=1024)
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        thread.join(timeout=5)


@contextmanager
def in_thread(server: Any) -> Iterator[str]:
    """Run a `socketserver`-style server (serve_forever, shutdown) in a thread."""
    # A short poll, so that shutting it down takes milliseconds, not half a second.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def werkzeug_in_thread(app: Any) -> Any:
    """Serve a WSGI app with werkzeug's own server (threaded) in a thread. It hands the app
    what the client sent, a Content-Length of -1 included, which production servers refuse
    themselves."""
    from werkzeug.serving import make_server

    return in_thread(make_server("127.0.0.1", 0, app, threaded=True))


def wsgiref_in_thread(app: Any) -> Any:
    """Serve a WSGI app with the standard library's wsgiref server in a thread."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    return in_thread(make_server("127.0.0.1", 0, app, handler_class=Quiet))


@contextmanager
def fixture_process(make_argv: Callable[[int], list[str]], env: dict[str, str], tries: int = 3) -> Iterator[str]:
    """Run a fixture app server in a subprocess on a free port. The port is chosen before the
    process binds it, so another suite running beside this one can take it in between: a
    server that exits before it listens is started again on another port."""
    for attempt in range(tries):
        port = free_port()
        full_env = {**os.environ, **env, "PORT": str(port), "PYTHONPATH": str(FIXTURES)}
        argv = make_argv(port)
        proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            try:
                wait_for_port(port, proc=proc)
            except RuntimeError:
                if attempt + 1 < tries:
                    continue
                raise
            yield f"http://127.0.0.1:{port}"
            return
        finally:
            stop(proc)
    raise AssertionError("unreachable")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def gunicorn(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--chdir", str(FIXTURES), *extra, "wsgi_app:app"]
