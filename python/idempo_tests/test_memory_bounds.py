"""B21 through the Python store options: the memory store's bounds are the core's, set by
keyword, and one scope at its share evicts its own records, never another scope's."""

from __future__ import annotations

from typing import Any

import pytest
from idempo import ConfigurationError, MemoryStore
from idempo.wsgi import IdempotencyMiddleware
from werkzeug.test import Client

from idempo_tests.conftest import key


def test_b21_the_bounds_are_set_by_keyword_and_shown() -> None:
    assert repr(MemoryStore()) == "MemoryStore(max_entries=100000, max_entries_per_scope=10000, max_bytes=67108864)"
    store = MemoryStore(max_entries=50, max_entries_per_scope=50, max_bytes=1 << 20)
    assert repr(store) == "MemoryStore(max_entries=50, max_entries_per_scope=50, max_bytes=1048576)"
    with pytest.raises(ConfigurationError, match="max_bytes"):
        MemoryStore(max_bytes=-1)


def test_b21_a_scope_at_its_share_evicts_its_own_records_never_anothers() -> None:
    runs = 0

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal runs
        runs += 1
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [f"run {runs}".encode()]

    mw = IdempotencyMiddleware(
        app, store=MemoryStore(max_entries_per_scope=2), scope=lambda environ: environ["HTTP_X_TENANT"]
    )
    client = Client(mw)

    def post(tenant: str, k: str) -> tuple[str, bool]:
        r = client.post("/pay", data=b"x", headers={"Idempotency-Key": k, "X-Tenant": tenant})
        return r.get_data(as_text=True), r.headers.get("Idempotency-Replayed") == "true"

    victim = key("victim")
    assert post("victim", victim) == ("run 1", False)
    attacker = [key("attacker") for _ in range(3)]
    for k in attacker:
        post("attacker", k)
    # The victim's record stays; the attacker's third key evicted its own first.
    assert post("victim", victim) == ("run 1", True)
    assert post("attacker", attacker[2]) == ("run 4", True)
    assert post("attacker", attacker[0]) == ("run 5", False)
