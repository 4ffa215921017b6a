"""The stores. Each is a thin subclass of the native store, which checks the URL and the
options, applies the core's defaults, and connects once per process (a store made before
``fork()``, as with gunicorn ``--preload``, works in every worker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from idempo._native import Store, url_kind

if TYPE_CHECKING:
    from typing_extensions import Self

EncryptionKeys: TypeAlias = str | Sequence[tuple[str, bytes]]
"""``encryption_keys`` (docs/RULES.md B24): ``[("k2", key2), ("k1", key1)]`` with 32-byte
keys, the one to encrypt with first, or the same as text, ``"k2:<base64>,k1:<base64>"``."""


class MemoryStore(Store):
    """An in-process store: one process, no services. Bounded by ``max_entries`` (100 000)
    and ``max_bytes`` of stored responses (64 MiB); one scope holds at most
    ``max_entries_per_scope`` (a tenth) and the same share of the bytes, and never evicts
    another scope's records."""

    def __new__(
        cls,
        *,
        max_entries: int | None = None,
        max_entries_per_scope: int | None = None,
        max_bytes: int | None = None,
    ) -> Self:
        return super().__new__(
            cls, "memory", [], max_entries=max_entries, max_entries_per_scope=max_entries_per_scope, max_bytes=max_bytes
        )


class RedisStore(Store):
    """A store in Redis (``redis://host:port/db``, ``rediss://`` for TLS), or with
    ``RedisStore.cluster`` in a Redis Cluster. Connects at construction, so a wrong URL
    fails here with ``StoreUnavailableError``. Over TLS the server's certificate must name
    the host and be signed by a CA of ``ca_file`` (PEM), or else of the system's. With
    ``encryption_keys`` every response is stored encrypted (B24)."""

    def __new__(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        ca_file: str | None = None,
        encryption_keys: EncryptionKeys | None = None,
    ) -> Self:
        return super().__new__(cls, "redis", [url], prefix=prefix, ca_file=ca_file, encryption_keys=encryption_keys)

    @classmethod
    def cluster(
        cls,
        urls: Sequence[str],
        *,
        prefix: str | None = None,
        ca_file: str | None = None,
        encryption_keys: EncryptionKeys | None = None,
    ) -> Self:
        """A store in a Redis Cluster, reached through any of ``urls``."""
        return Store.__new__(
            cls, "cluster", list(urls), prefix=prefix, ca_file=ca_file, encryption_keys=encryption_keys
        )


class PostgresStore(Store):
    """A store in PostgreSQL (``postgres://user:password@host:port/db``). Connects, and
    unless ``migrate=False`` creates its table, at construction. TLS follows the URL's
    ``sslmode`` (``require``, ``verify-ca``, ``verify-full``); ``ca_file`` (PEM) is the CA to
    trust, and without an ``sslmode`` it means ``verify-full``. Expired rows are deleted
    every ``sweep_interval`` seconds (60) by one process at a time; ``0`` turns that off,
    for those who call ``sweep()`` on a schedule of their own. With ``encryption_keys`` every
    response is stored encrypted (B24)."""

    def __new__(
        cls,
        url: str,
        *,
        table: str | None = None,
        migrate: bool | None = None,
        sweep_interval: float | None = None,
        ca_file: str | None = None,
        encryption_keys: EncryptionKeys | None = None,
    ) -> Self:
        return super().__new__(
            cls,
            "postgres",
            [url],
            table=table,
            migrate=migrate,
            sweep_interval=sweep_interval,
            ca_file=ca_file,
            encryption_keys=encryption_keys,
        )


def store_from_url(url: str, **options: object) -> MemoryStore | RedisStore | PostgresStore:
    """The store a URL names: ``memory``, ``redis://…`` or ``postgres://…``, with the
    options that kind of store takes."""
    classes: dict[str, type[MemoryStore | RedisStore | PostgresStore]] = {
        "memory": MemoryStore,
        "redis": RedisStore,
        "postgres": PostgresStore,
    }
    return Store.__new__(classes[url_kind(url)], "url", [url], **options)
