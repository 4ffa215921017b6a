"""Shared fixtures: the stores (memory, and real Redis and PostgreSQL from REDIS_URL and
DATABASE_URL, which `make test` starts), and the fixture apps of every Python framework
served in this process by a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "python"))
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

import asgi_app
import wsgi_app
from fixture_common import Counter, options_from_env
from idempo import MemoryStore, PostgresStore, RedisStore

from idempo_tests import fastapi_app
from idempo_tests.servers import uvicorn_in_loop, werkzeug_in_thread

STORES = ["memory", "redis", "postgres"]
FRAMEWORKS = ["starlette", "fastapi", "flask"]

# The fixture variables the conformance matrix starts every app with.
MATRIX_SETTINGS = {"IDEMPO_REQUIRED": "0", "IDEMPO_TTL_MS": "5000"}


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


def key(name: str = "k") -> str:
    return f"{name}-{uuid.uuid4().hex}"


def create_app(framework: str, store: Any, counter: Counter, **options: Any) -> Any:
    """One framework's fixture app behind the middleware."""
    maker = {"starlette": asgi_app.create_app, "fastapi": fastapi_app.create_app, "flask": wsgi_app.create_app}
    return maker[framework](store, counter, **options)


@contextlib.asynccontextmanager
async def serving(framework: str, store_kind: str, settings: Mapping[str, str] = MATRIX_SETTINGS) -> AsyncIterator[tuple[str, Any]]:
    """The framework's fixture app, configured by fixture variables, served in this
    process: uvicorn in this event loop (ASGI), werkzeug's server in a thread (WSGI).
    Yields (base URL, app)."""
    # Stores connect at construction: off the event loop, which other apps share.
    store = await asyncio.to_thread(make_store, store_kind)
    app = create_app(framework, store, Counter(), **options_from_env(settings))
    if framework == "flask":
        with werkzeug_in_thread(app) as base:
            yield base, app
    else:
        async with uvicorn_in_loop(app) as base:
            yield base, app


def middleware_of(app: Any) -> Any:
    """Walk from a fixture app to the IdempotencyMiddleware inside it."""
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
