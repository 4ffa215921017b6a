"""The forged-record cell (B14, B18), one per integration and durable store: whoever can
write to the store replaces a stored response with one of their own making, and the next
retry must not carry what no recorder would have stored. Each case stores a real response
first (its body holds a marker), overwrites that record in Redis or PostgreSQL, retries,
and reads the answer as bytes off the wire."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from typing import Any

import raw_store
from apps import Passed, client, raw_request, serving
from faults import counter


def encode(status: int, headers: list[tuple[str, str]], body: bytes | None) -> bytes:
    """A record in the stored encoding (core/src/record.rs), as a writer other than Idempo
    would make one."""
    out = b"IDR\x01" + struct.pack(">HH", status, len(headers))
    for name, value in headers:
        out += struct.pack(">H", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    return out + (b"\x00" if body is None else b"\x01" + struct.pack(">I", len(body)) + body)


# Finds the record whose bytes hold the marker and overwrites it: one round trip, so the
# many records other cells keep in the same Redis are never read out.
REDIS_OVERWRITE = """
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  local r = redis.call('TYPE', k)['ok'] == 'hash' and redis.call('HGET', k, 'r')
  if r and string.find(r, ARGV[2], 1, true) then
    redis.call('HSET', k, 'r', ARGV[3])
    return 1
  end
end
return 0
"""


def overwrite_redis(marker: bytes, record: bytes) -> bool:
    return bool(raw_store.redis("EVAL", REDIS_OVERWRITE, 0, raw_store.PREFIX + "*", marker, record) == 1)


def overwrite_postgres(marker: bytes, record: bytes) -> bool:
    sql = (
        f"UPDATE {raw_store.TABLE} SET record = decode('{record.hex()}', 'hex') "
        f"WHERE position(decode('{marker.hex()}', 'hex') in record) > 0"
    )
    return raw_store.psql(sql + " RETURNING 1") == "1"


OVERWRITE = {"redis": overwrite_redis, "postgres": overwrite_postgres}


def exchange(port: int, raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send raw bytes, read the answer until the server closes: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    return status, headers, body


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [n for n, _ in headers]


def injected(marker: bytes) -> bytes:
    return encode(
        200,
        [
            ("content-type", "text/plain"),
            ("set-cookie", "session=stolen"),
            ("transfer-encoding", "chunked"),
            ("content-length", "999"),
            ("access-control-allow-origin", "*"),
            ("x-forged", "1"),
        ],
        b"forged " + marker,
    )


def check_injected(status: int, headers: list[tuple[str, str]], body: bytes, marker: bytes) -> str | None:
    if status != 200 or not body.endswith(b"forged " + marker):
        return f"answered {status} {body[:60]!r}"
    banned = {"set-cookie", "transfer-encoding", "access-control-allow-origin", "x-forged"} & set(names(headers))
    if banned:
        return f"replayed {sorted(banned)}"
    lengths = [v for n, v in headers if n == "content-length"]
    if lengths != [str(len(body))]:
        return f"content-length {lengths} for a body of {len(body)}"
    return None


def check_corrupt(status: int, headers: list[tuple[str, str]], body: bytes, marker: bytes) -> str | None:
    del headers, marker
    if status != 503 or b"store-unavailable" not in body:
        return f"answered {status} {body[:60]!r}, not 503 store-unavailable"
    return None


CASES: dict[str, tuple[Any, Any]] = {
    "injected headers": (injected, check_injected),
    "101 status": (lambda m: encode(101, [("upgrade", "websocket")], b""), check_corrupt),
    "204 with a body": (lambda m: encode(204, [], b"smuggled " + m), check_corrupt),
    "304 with a body": (lambda m: encode(304, [], b"smuggled " + m), check_corrupt),
}


async def run_forged(app: str, command: list[str], store: str) -> str | None:
    del app
    async with serving(command, store) as (_, base), client() as http:
        port = int(base.rsplit(":", 1)[1])
        for case, (forge, check) in CASES.items():
            marker = f"forge-{uuid.uuid4().hex}".encode()
            key = f"forged-{uuid.uuid4().hex}"
            headers = {"Idempotency-Key": key, "Content-Type": "text/plain"}
            first = await http.post(f"{base}/echo", content=marker, headers=headers)
            if first.status_code != 201:
                return f"{case}: the first request got {first.status_code}"
            runs = await counter(http, base)
            if not await asyncio.to_thread(OVERWRITE[store], marker, forge(marker)):
                return f"{case}: the stored record was not found in the store"
            raw = raw_request(b"/echo", [(b"Idempotency-Key", key.encode()), (b"Content-Type", b"text/plain")], marker)
            status, got, body = await asyncio.to_thread(exchange, port, raw)
            if why := check(status, got, body, marker):
                return f"{case}: {why}"
            if await counter(http, base) != runs:
                return f"{case}: the handler ran again"
    return Passed("; ".join(CASES))
