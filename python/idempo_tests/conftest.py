"""Shared fixtures: the stores (memory, and real Redis and PostgreSQL from REDIS_URL and
DATABASE_URL, which `make test` starts), the frameworks, and an async client for each."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "python"))

import asgi_app  # noqa: E402
import wsgi_app  # noqa: E402
from fixture_common import Counter  # noqa: E402
from idempo_tests import fastapi_app  # noqa: E402
from werkzeug.test import Client as WerkzeugClient  # noqa: E402

from idempo import MemoryStore, PostgresStore, RedisStore  # noqa: E402


def env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run `make test` (it starts a throwaway {what}) or set {name}", pytrace=False)
    return value


def make_store(kind: str) -> MemoryStore | RedisStore | PostgresStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        return RedisStore(env("REDIS_URL", "Redis"))
    return PostgresStore(env("DATABASE_URL", "PostgreSQL"))


STORES = ["memory", "redis", "postgres"]
FRAMEWORKS = ["starlette", "fastapi", "flask"]


def key(name: str = "k") -> str:
    return f"{name}-{uuid.uuid4().hex}"


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotency-replayed") == "true"

    @property
    def text(self) -> str:
        return self.body.decode()

    def problem(self, status: int, code: str) -> dict[str, Any]:
        import json

        assert self.status == status, (self.status, self.text)
        assert self.headers["content-type"] == "application/problem+json"
        assert self.headers["cache-control"] == "no-store"
        doc: dict[str, Any] = json.loads(self.body)
        assert doc["code"] == code and doc["status"] == status, doc
        assert set(doc) == {"type", "title", "status", "detail", "code"}
        assert not self.replayed
        return doc


class Client:
    """One framework's fixture app behind the middleware, called in-process."""

    def __init__(self, framework: str, store: Any, **options: Any) -> None:
        self.framework = framework
        self.counter = Counter()
        if framework == "flask":
            self.app = wsgi_app.create_app(store, self.counter, **options)
        elif framework == "starlette":
            self.app = asgi_app.create_app(store, self.counter, **options)
        else:
            self.app = fastapi_app.create_app(store, self.counter, **options)

    @property
    def middleware(self) -> Any:
        """The IdempotencyMiddleware instance inside the app (for stats())."""
        return _find_middleware(self.app)

    async def request(
        self, method: str, path: str, *, key: str | None = None, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        h = dict(headers or {})
        if key is not None:
            h["Idempotency-Key"] = key
        if self.framework == "flask":
            return await asyncio.to_thread(self._wsgi, method, path, body, h)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            r = await client.request(method, path, content=body, headers=h)
            return Reply(r.status_code, r.headers, r.content)

    def _wsgi(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        r = WerkzeugClient(self.app).open(path, method=method, data=body, headers=headers)
        return Reply(r.status_code, httpx.Headers(list(r.headers.items())), r.get_data())

    async def post(self, path: str, key: str | None = None, body: bytes = b"", **kw: Any) -> Reply:
        return await self.request("POST", path, key=key, body=body, **kw)

    @property
    def count(self) -> int:
        return self.counter.get()


def _find_middleware(app: Any) -> Any:
    """Walk from the app to the IdempotencyMiddleware inside it."""
    from idempo._options import Configured

    obj = app
    for _ in range(20):
        if isinstance(obj, Configured):
            return obj
        # Starlette builds its middleware stack on the first request: build it now.
        if hasattr(obj, "build_middleware_stack") and obj.middleware_stack is None:
            obj.middleware_stack = obj.build_middleware_stack()
        obj = next(getattr(obj, a) for a in ("inner", "flask", "wsgi_app", "middleware_stack", "app") if hasattr(obj, a))
    raise AssertionError("no IdempotencyMiddleware found in the app")


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client_factory(framework: str, store_kind: str) -> Callable[..., Client]:
    def make(**options: Any) -> Client:
        return Client(framework, make_store(store_kind), **options)

    return make


@pytest.fixture
def client(client_factory: Callable[..., Client]) -> Client:
    return client_factory()
