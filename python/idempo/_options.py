"""The options every middleware takes (DESIGN.md §3), passed to the native engine as they are."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar

from idempo._native import Engine, MemoryStore, PostgresStore, RedisStore

AppT = TypeVar("AppT")
ScopeArgT = TypeVar("ScopeArgT")


class Configured(Generic[AppT, ScopeArgT]):
    """Holds the wrapped app, the engine and the scope function."""

    __slots__ = ("app", "engine", "scope")

    def __init__(
        self,
        app: AppT,
        store: MemoryStore | RedisStore | PostgresStore | None = None,
        *,
        scope: Callable[[ScopeArgT], str] | None = None,
        methods: Iterable[str] | None = None,
        header: str | None = None,
        required: bool = False,
        max_key_length: int = 255,
        strict_key_syntax: bool = False,
        max_request_body: int = 1 << 20,
        max_response_body: int = 1 << 20,
        lease_ttl: float = 60.0,
        max_lease: float = 3600.0,
        ttl: float = 86400.0,
        store_status: Callable[[int], bool] | None = None,
        replay_headers: Iterable[str] | None = None,
        replayed_header: str | None = None,
        on_store_error: Literal["fail_closed", "fail_open"] = "fail_closed",
        persist_timeout: float = 10.0,
        fingerprint_headers: Iterable[str] | None = None,
        fingerprint_secret: str | bytes | None = None,
        problem_base: str | None = None,
    ) -> None:
        self.app = app
        self.scope = scope
        self.engine = Engine(
            store if store is not None else MemoryStore(),
            methods=None if methods is None else list(methods),
            header=header,
            required=required,
            max_key_length=max_key_length,
            strict_key_syntax=strict_key_syntax,
            max_request_body=max_request_body,
            max_response_body=max_response_body,
            lease_ttl=lease_ttl,
            max_lease=max_lease,
            ttl=ttl,
            store_status=store_status,
            replay_headers=None if replay_headers is None else list(replay_headers),
            replayed_header=replayed_header,
            on_store_error=on_store_error,
            persist_timeout=persist_timeout,
            fingerprint_headers=None if fingerprint_headers is None else list(fingerprint_headers),
            fingerprint_secret=fingerprint_secret,
            problem_base=problem_base,
        )

    def stats(self) -> dict[str, int]:
        """The engine's counters: bypassed, executed, replayed, conflicts, mismatches,
        invalid, too_large, store_errors, lease_lost, omitted."""
        return self.engine.stats()
