"""B5 as only Python can get it wrong: a scope function that raises or returns nothing is
an error (500, nothing claimed), never a shared namespace. The default scope (the
caller's Authorization) and GLOBAL_SCOPE are tested through the scenario files."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from idempo import GLOBAL_SCOPE, ConfigurationError, MemoryStore
from idempo.asgi import IdempotencyMiddleware as AsgiMiddleware
from idempo.wsgi import IdempotencyMiddleware as WsgiMiddleware
from werkzeug.test import Client as WerkzeugClient

from idempo_tests.conftest import key


def failing_scope(_: object) -> str:
    raise LookupError("no authenticated user")


BAD_SCOPES = {"returns None": lambda _: None, "raises": failing_scope}


@pytest.mark.parametrize("bad", BAD_SCOPES.values(), ids=BAD_SCOPES.keys())
async def test_b5_asgi_a_scope_function_without_an_answer_is_a_500_and_claims_nothing(bad: Any) -> None:
    runs = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal runs
        runs += 1
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    store, k = MemoryStore(), key("bad-scope")
    transport = httpx.ASGITransport(app=AsgiMiddleware(app, store=store, scope=bad), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/pay", content=b"x", headers={"Idempotency-Key": k})
    assert (r.status_code, runs) == (500, 0)
    # Nothing was claimed: the same key in the global namespace runs.
    transport = httpx.ASGITransport(app=AsgiMiddleware(app, store=store, scope=GLOBAL_SCOPE))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/pay", content=b"x", headers={"Idempotency-Key": k})
    assert (r.status_code, r.headers.get("idempotency-replayed"), runs) == (201, None, 1)


@pytest.mark.parametrize("bad", BAD_SCOPES.values(), ids=BAD_SCOPES.keys())
def test_b5_wsgi_a_scope_function_without_an_answer_is_an_error_and_claims_nothing(bad: Any) -> None:
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        start_response("201 Created", [])
        return [b"done"]

    store, k = MemoryStore(), key("bad-scope")
    # The server turns the exception into its 500.
    with pytest.raises((LookupError, ConfigurationError)):
        WerkzeugClient(WsgiMiddleware(app, store=store, scope=bad)).post("/pay", data=b"x", headers={"Idempotency-Key": k})
    assert runs == 0
    r = WerkzeugClient(WsgiMiddleware(app, store=store, scope=GLOBAL_SCOPE)).post("/pay", data=b"x", headers={"Idempotency-Key": k})
    assert (r.status_code, r.headers.get("idempotency-replayed"), runs) == (201, None, 1)


def test_b5_scope_must_be_a_function_or_global_scope() -> None:
    with pytest.raises(ConfigurationError, match="GLOBAL_SCOPE"):
        AsgiMiddleware(None, scope="tenant")  # type: ignore[arg-type]
    assert repr(GLOBAL_SCOPE) == "idempo.GLOBAL_SCOPE"
