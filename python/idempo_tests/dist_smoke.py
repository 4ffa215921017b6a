"""Run inside a fresh virtualenv by scripts/dist-python-smoke.sh (make test's test_dist.py,
and the release workflow for every wheel): an ASGI app under uvicorn and a Flask app under
wsgiref, each behind idempo's middleware, each sent the same keyed POST twice. Prints what
the client saw and how often each handler ran, as JSON, and fails unless each answered 201
and then replayed it with one execution."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import uvicorn
from flask import Flask
from idempo import MemoryStore
from idempo.asgi import IdempotencyMiddleware as AsgiIdempotency
from idempo.wsgi import IdempotencyMiddleware as WsgiIdempotency
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

runs = {"asgi": 0, "wsgi": 0}
# A first execution (201, not replayed), then its replay: the same status and body, one run.
ONCE = [201, None, "made 1", 201, "true", "made 1"]
SERVED = {"asgi": ONCE, "wsgi": ONCE, "runs": {"asgi": 1, "wsgi": 1}}


async def made(request: Request) -> PlainTextResponse:
    runs["asgi"] += 1
    return PlainTextResponse(f"made {runs['asgi']}", status_code=201)


flask = Flask("smoke")


@flask.post("/made")
def made_wsgi() -> tuple[str, int]:
    runs["wsgi"] += 1
    return f"made {runs['wsgi']}", 201


flask.wsgi_app = WsgiIdempotency(flask.wsgi_app, store=MemoryStore())  # type: ignore[method-assign]
asgi = AsgiIdempotency(Starlette(routes=[Route("/made", made, methods=["POST"])]), store=MemoryStore())


def twice(url: str) -> list[Any]:
    seen: list[Any] = []
    for _ in range(2):
        headers = {"Idempotency-Key": "k1", "Content-Type": "text/plain"}
        with urllib.request.urlopen(urllib.request.Request(url, data=b"hello", method="POST", headers=headers)) as r:
            seen += [r.status, r.headers.get("Idempotency-Replayed"), r.read().decode()]
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    via_asgi = twice(f"http://127.0.0.1:{port}/made")
    server.should_exit = True
    thread.join(10)
    httpd = make_server("127.0.0.1", 0, flask, handler_class=Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    via_wsgi = twice(f"http://127.0.0.1:{httpd.server_port}/made")
    httpd.shutdown()
    seen = {"asgi": via_asgi, "wsgi": via_wsgi, "runs": runs}
    print(json.dumps(seen))
    if seen != SERVED:
        sys.exit(f"dist_smoke: expected {json.dumps(SERVED)}")


if __name__ == "__main__":
    main()
