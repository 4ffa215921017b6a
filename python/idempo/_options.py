"""What both middleware share: the wrapped app, the native engine with the options the user
set, and the user's own functions (``scope``, ``store_status``).

Every option defaults to ``None``: the Rust core's default applies (the README lists them;
``middleware.options()`` reads back the effective values), so a default is stated in one
place only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar

from idempo._native import Engine, Pending
from idempo._stores import MemoryStore, PostgresStore, RedisStore

AppT = TypeVar("AppT")
ScopeArgT = TypeVar("ScopeArgT")


class _GlobalScope:
    __slots__ = ()

    def __repr__(self) -> str:
        return "idempo.GLOBAL_SCOPE"


GLOBAL_SCOPE = _GlobalScope()
"""``scope=GLOBAL_SCOPE``: one namespace for every caller, whatever its credentials (B5).
Only for services whose keys are unique across all callers."""


class Configured(Generic[AppT, ScopeArgT]):
    """Holds the wrapped app, the engine and the user's functions."""

    __slots__ = ("app", "engine", "scope", "store_status")

    def __init__(
        self,
        app: AppT,
        store: MemoryStore | RedisStore | PostgresStore | None = None,
        *,
        scope: Callable[[ScopeArgT], str] | _GlobalScope | None = None,
        store_status: Callable[[int], bool] | None = None,
        methods: Iterable[str] | None = None,
        header: str | None = None,
        required: bool | None = None,
        max_key_length: int | None = None,
        strict_key_syntax: bool | None = None,
        max_request_body: int | None = None,
        max_response_body: int | None = None,
        lease_ttl: float | None = None,
        max_lease: float | None = None,
        ttl: float | None = None,
        replay_headers: Iterable[str] | None = None,
        replayed_header: str | None = None,
        on_store_error: Literal["fail_closed", "fail_open"] | None = None,
        persist_timeout: float | None = None,
        retry_after: float | None = None,
        wait: float | None = None,
        max_wait: float | None = None,
        max_waiters: int | None = None,
        fingerprint_headers: Iterable[str] | None = None,
        fingerprint_secret: str | bytes | None = None,
        problem_base: str | None = None,
    ) -> None:
        from idempo import ConfigurationError

        if store_status is not None and not callable(store_status):
            raise ConfigurationError("store_status must be a callable taking the status code and returning a bool")
        if scope is not None and scope is not GLOBAL_SCOPE and not callable(scope):
            raise ConfigurationError("scope must be a callable returning the caller's namespace (a str), or GLOBAL_SCOPE")
        self.app = app
        self.scope = scope
        self.store_status = store_status
        self.engine = Engine(
            store if store is not None else MemoryStore(),
            methods=methods,
            header=header,
            required=required,
            max_key_length=max_key_length,
            strict_key_syntax=strict_key_syntax,
            max_request_body=max_request_body,
            max_response_body=max_response_body,
            lease_ttl=lease_ttl,
            max_lease=max_lease,
            ttl=ttl,
            replay_headers=replay_headers,
            replayed_header=replayed_header,
            on_store_error=on_store_error,
            persist_timeout=persist_timeout,
            retry_after=retry_after,
            wait=wait,
            max_wait=max_wait,
            max_waiters=max_waiters,
            fingerprint_headers=fingerprint_headers,
            fingerprint_secret=fingerprint_secret,
            problem_base=problem_base,
        )

    def place(self, pending: Pending, arg: ScopeArgT) -> None:
        """Put the key in its namespace (B5): the scope function's answer, the global one,
        or, with neither, the core's default (the caller's ``Authorization``)."""
        if isinstance(self.scope, _GlobalScope):
            pending.set_global_scope()
        elif self.scope is not None:
            pending.set_scope(self.scope(arg))

    def verdict(self, status: int) -> bool | str | None:
        """What ``store_status`` says of ``status``, for the engine: ``None`` without one,
        the error's text if it raised (the engine then applies its default and logs it)."""
        if self.store_status is None:
            return None
        try:
            return bool(self.store_status(status))
        except Exception as e:  # noqa: BLE001 - the engine decides what a failure means
            return f"{type(e).__name__}: {e}"

    def options(self) -> dict[str, object]:
        """The effective value of every option, the core's defaults included (durations in
        seconds)."""
        return self.engine.options()

    def stats(self) -> dict[str, int]:
        """The engine's counters (``idempo.COUNTERS`` names them)."""
        return self.engine.stats()
