"""The store read and written directly, as whoever has access to Redis or PostgreSQL could:
for the cells that play that part (forged.py, encryption.py). Stdlib only: a few RESP
commands over a socket, and psql."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

TABLE = "idempo_records"
PREFIX = "idempo:"


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self) -> Any:
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode(errors="replace"))
        if kind in (b"+",):
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exactly(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line[:40]!r}")


def redis(*args: bytes | str | int) -> Any:
    """One command to REDIS_URL; its reply (bytes, int, list, or None)."""
    u = urlsplit(os.environ["REDIS_URL"])
    raw = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10) as s:
        s.sendall(resp(*raw))
        return _Reader(s).reply()


def psql(sql: str) -> str:
    """One statement to DATABASE_URL; its output, unaligned and without headers."""
    binary = subprocess.run(
        ["bash", "-c", "command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1"], capture_output=True, text=True
    ).stdout.strip()
    out = subprocess.run([binary, os.environ["DATABASE_URL"], "-q", "-A", "-t", "-c", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def record_id(scope: str, key: str) -> bytes:
    """The record id of a key in a scope (core/src/fingerprint.rs `RecordId::new`), as an
    attacker who knows the scheme computes it."""
    s, k = scope.encode("latin-1"), key.encode()
    return hashlib.sha256(
        b"idempo-id-v1" + b"\x01" + len(s).to_bytes(8, "big") + s + len(k).to_bytes(8, "big") + k
    ).digest()


def redis_key(rid: bytes) -> bytes:
    return PREFIX.encode() + b"{" + rid.hex().encode() + b"}"


def read_record(store: str, rid: bytes) -> bytes | None:
    """The stored record bytes of an id (None when it has none)."""
    if store == "redis":
        got = redis("HGET", redis_key(rid), "r")
        return got if isinstance(got, bytes) else None
    out = psql(f"SELECT encode(record, 'hex') FROM {TABLE} WHERE id = '\\x{rid.hex()}'")
    return bytes.fromhex(out) if out else None


def write_record(store: str, rid: bytes, record: bytes) -> None:
    if store == "redis":
        redis("HSET", redis_key(rid), "r", record)
    else:
        psql(f"UPDATE {TABLE} SET record = '\\x{record.hex()}' WHERE id = '\\x{rid.hex()}'")


def copy_entry(store: str, source: bytes, target: bytes) -> None:
    """Copy a whole entry (fingerprint and record) to another id."""
    if store == "redis":
        fields = redis("HGETALL", redis_key(source))
        redis("HSET", redis_key(target), *fields)
        redis("PEXPIRE", redis_key(target), 60_000)
    else:
        psql(
            f"INSERT INTO {TABLE} (id, fingerprint, token, record, expires_at) "
            f"SELECT '\\x{target.hex()}', fingerprint, token, record, now() + interval '1 minute' "
            f"FROM {TABLE} WHERE id = '\\x{source.hex()}'"
        )
