"""Make unsafe HTTP requests safe to retry.

A client sends an ``Idempotency-Key`` header; a duplicate request runs its side effect at
most once and gets the original response replayed. ``idempo.asgi`` and ``idempo.wsgi``
hold the middleware; the stores and errors are here.
"""

from idempo._native import (
    COUNTERS,
    ConfigurationError,
    IdempoError,
    StoreCorruptError,
    StoreUnavailableError,
)
from idempo._options import GLOBAL_SCOPE
from idempo._stores import MemoryStore, PostgresStore, RedisStore, store_from_url

Store = MemoryStore | RedisStore | PostgresStore
"""Any of the three stores."""

__all__ = [
    "COUNTERS",
    "GLOBAL_SCOPE",
    "ConfigurationError",
    "IdempoError",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Store",
    "StoreCorruptError",
    "StoreUnavailableError",
    "store_from_url",
]
