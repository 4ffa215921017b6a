"""The mixed-fleet cells (B14, promise 3): every fixture app on one shared store. A request
executed through one integration is retried through each of the others, and every retry
must replay it byte for byte: the status, each replayable header with every one of its
lines in order, and the body. All replays of one record must also be identical to each
other, whichever integration wrote it and whichever serves it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import raw_store
from apps import ENCRYPTED, Failure, client, fleet_of

# The default replayable headers (docs/RULES.md B14), as a client sees them.
REPLAYABLE = [
    "content-type", "content-encoding", "content-language", "content-location", "location",
    "etag", "last-modified", "cache-control", "vary", "link",
]  # fmt: skip


def replayed_part(r: httpx.Response) -> tuple[int, list[tuple[str, list[str]]], bytes]:
    """What a replay must carry: status, the replayable headers' lines, the body."""
    return r.status_code, [(name, r.headers.get_list(name)) for name in REPLAYABLE], r.content


def describe(part: tuple[int, list[tuple[str, list[str]]], bytes]) -> str:
    status, headers, body = part
    shown = ", ".join(f"{n}={v}" for n, v in headers if v)
    return f"{status} [{shown}] {body[:40]!r}"


async def run_fleet(apps: dict[str, Any], names: list[str], store: str) -> dict[str, str | None]:
    """One cell per ordered pair source->target; None when it passed."""
    results: dict[str, str | None] = {}
    try:
        async with fleet_of(apps, names, store) as ports, client() as http:
            for source in names:
                key = f"fleet-{uuid.uuid4().hex}"
                body = f"made by {source} \u00e9".encode()
                headers = {"Idempotency-Key": key, "Content-Type": "text/plain; charset=utf-8"}

                def url(app: str) -> str:
                    return f"http://127.0.0.1:{ports[app]}/headers?via=fleet"

                original = await http.post(url(source), content=body, headers=headers)
                expected = replayed_part(original)
                if store.endswith(ENCRYPTED):
                    # The record every other integration replays is the sealed one (B24).
                    server = store.removesuffix(ENCRYPTED)
                    stored = raw_store.read_record(server, raw_store.record_id("", key)) or b""
                    if not stored.startswith(b"IDR\x02\x06matrix") or body in stored:
                        results[f"{source}->*"] = f"not stored encrypted: {stored[:24]!r}"
                        continue
                replays: dict[str, tuple[int, list[tuple[str, list[str]]], bytes]] = {}
                for target in names:
                    if target == source:
                        continue
                    cell = f"{source}->{target}"
                    r = await http.post(url(target), content=body, headers=headers)
                    got = replays[target] = replayed_part(r)
                    if original.status_code != 201:
                        results[cell] = f"the original through {source} answered {original.status_code}"
                    elif r.headers.get("idempotency-replayed") != "true":
                        results[cell] = f"not replayed: {r.status_code} {r.text[:80]!r}"
                    elif got != expected:
                        results[cell] = f"replay {describe(got)} differs from the original {describe(expected)}"
                    elif r.headers.get("content-length") != str(len(r.content)):
                        results[cell] = f"Content-Length {r.headers.get('content-length')!r} for {len(r.content)} bytes"
                    else:
                        results[cell] = None
                distinct = {describe(part) for part in replays.values()}
                if len(distinct) > 1 and all(results.get(f"{source}->{t}") is None for t in replays):
                    results[f"{source}->*"] = f"the replays differ from each other: {sorted(distinct)}"
    except Failure as why:
        return {f"{a}->*": str(why) for a in names}
    return results
