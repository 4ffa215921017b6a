"""The scenario runner: the one Python reading of the scenario files in scenarios/. The
driver (driver.py) runs them against the fixture apps in their own processes; the Python
suite (python/idempo_tests/test_scenarios.py) against the same apps served in-process.
node/test/scenarios.test.js is the same runner in JavaScript.

A scenario file is {"rules": "B…", "settings": {…}, "steps": [...]}. `settings`, when
present, are fixture variables (tests/fixtures/README.md, e.g. {"IDEMPO_REQUIRED": "1"}) the
app must be started with on top of the matrix's own. A step is one of
  {"send": REQUEST, "expect": EXPECT}      one request, checked
  {"background": REQUEST, "as": "name"}    a request left running
  {"await": "name", "expect": EXPECT}      wait for it, check it
  {"sleep": ms}
  {"count": n}                             GET /counter equals n (the scenario starts at /reset)
  {"concurrent": n, "send": REQUEST}       n at once: exactly one original, the rest replays
                                           of it or 409 key-in-use ("no_conflicts": true: no
                                           409, every duplicate waited for the original, B20)
REQUEST: {"method", "path", "key", "key_len", "body", "body_bytes", "chunked", "headers",
"raw", "server_may_refuse"}. "$key" and "$key2" in strings are replaced by keys unique to
the run. With "raw": true the request goes out on a plain socket exactly as written (a
lower-case method, an absolute-form "path" where "$origin" is the app's http://host:port),
which no HTTP client library sends. With "server_may_refuse": true a response that did not
come from the app (no X-Pid header: the server itself refused the request) ends the
scenario as not applicable to that server. With "chunked": true the body is sent without a
Content-Length. EXPECT: {"status", "status_below", "replayed", "body", "body_len",
"same_body_as", "problem", "headers", "header_list", "header_absent", "retry_after_min",
"elapsed_min_ms" (the answer took at least this long)}.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from apps import Failure

SCENARIOS = Path(__file__).resolve().parent / "scenarios"

__all__ = ["Failure", "NotApplicable", "load_scenarios", "run_scenario"]


class NotApplicable(Exception):
    """The server refused a request the scenario is about (`server_may_refuse`)."""


def load_scenarios(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(SCENARIOS.glob("*.json"))}
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise SystemExit(f"no such scenario: {', '.join(missing)} (have: {', '.join(found)})")
        return {n: found[n] for n in names}
    return found


def substitute(value: Any, keys: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, key in keys.items():
            value = value.replace(name, key)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, keys) for v in value]
    return value


def _raw(base: str, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    """One request on a plain socket, exactly as given; the response parsed by http.client."""
    where = urlsplit(base)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {where.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if not any(name.lower() == "content-length" for name in headers):
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        res = http.client.HTTPResponse(sock, method=method.upper())
        res.begin()
        content = res.read()
        # A stream, not content: httpx would add a Content-Length the server never sent.
        response = httpx.Response(res.status, headers=res.getheaders(), stream=httpx.ByteStream(content))
        response.read()
        return response


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


async def send(client: httpx.AsyncClient, request: dict[str, Any]) -> httpx.Response:
    headers = dict(request.get("headers", {}))
    if "key" in request:
        headers["Idempotency-Key"] = request["key"]
    if "key_len" in request:
        # Unique per request, so durable stores shared between runs start clean.
        headers["Idempotency-Key"] = uuid.uuid4().hex.ljust(int(request["key_len"]), "k")
    body = request.get("body", "").encode()
    if "body_bytes" in request:
        body = b"x" * int(request["body_bytes"])
    method = request.get("method", "POST")
    if request.get("raw"):
        base = str(client.base_url).rstrip("/")
        target = request["path"].replace("$origin", base)
        response = await asyncio.to_thread(_raw, base, method, target, headers, body)
    else:
        content: Any = _chunks(body) if request.get("chunked") else body
        response = await client.request(method, request["path"], content=content, headers=headers)
        await response.aread()
    if request.get("server_may_refuse") and "x-pid" not in response.headers:
        raise NotApplicable(f"the server refused {method} {request['path']} itself ({response.status_code})")
    return response


def check(step: int, r: httpx.Response, expect: dict[str, Any], seen: list[httpx.Response]) -> None:
    def fail(why: str) -> None:
        raise Failure(f"step {step}: {why} (got {r.status_code}: {r.text[:160]!r})")

    if "status" in expect and r.status_code != expect["status"]:
        fail(f"status {r.status_code}, expected {expect['status']}")
    if "status_below" in expect and r.status_code >= expect["status_below"]:
        fail(f"status {r.status_code}, expected below {expect['status_below']}")
    if "replayed" in expect and (r.headers.get("idempotency-replayed") == "true") != expect["replayed"]:
        fail(f"Idempotency-Replayed is {r.headers.get('idempotency-replayed')!r}, expected replayed={expect['replayed']}")
    if "body" in expect and r.text != expect["body"]:
        fail(f"body {r.text[:60]!r}, expected {expect['body'][:60]!r}")
    if "body_len" in expect and len(r.content) != expect["body_len"]:
        fail(f"body length {len(r.content)}, expected {expect['body_len']}")
    if "same_body_as" in expect and r.content != seen[expect["same_body_as"]].content:
        fail(f"body differs from step {expect['same_body_as']}'s")
    if "problem" in expect:
        if r.headers.get("content-type") != "application/problem+json":
            fail("not application/problem+json")
        if r.headers.get("cache-control") != "no-store":
            fail("problem without Cache-Control: no-store")
        doc = r.json()
        if doc.get("code") != expect["problem"] or doc.get("status") != r.status_code:
            fail(f"problem code {doc.get('code')!r}, expected {expect['problem']!r}")
        if set(doc) != {"type", "title", "status", "detail", "code"}:
            fail(f"problem members {sorted(doc)}")
    for name, value in expect.get("headers", {}).items():
        got = r.headers.get(name)
        if got is None or not got.startswith(value):
            fail(f"header {name} is {got!r}, expected {value!r}")
    for name, values in expect.get("header_list", {}).items():
        # Every line of a repeated header, in order, however the server split or joined them.
        got = [v.strip() for line in r.headers.get_list(name) for v in _split_list(line)]
        if got != values:
            fail(f"header {name} is {got!r}, expected {values!r}")
    for name in expect.get("header_absent", []):
        if name in r.headers:
            fail(f"header {name} should be absent (it is {r.headers.get(name)!r})")
    if "retry_after_min" in expect and int(r.headers.get("retry-after", "0")) < expect["retry_after_min"]:
        fail(f"Retry-After {r.headers.get('retry-after')!r}")
    if "elapsed_min_ms" in expect and r.elapsed.total_seconds() * 1000 < expect["elapsed_min_ms"]:
        fail(f"answered after {r.elapsed.total_seconds() * 1000:.0f} ms, expected at least {expect['elapsed_min_ms']}")


def _split_list(line: str) -> list[str]:
    """A header line holding a comma-separated list, split outside quotes and <…>."""
    items, depth, quoted, start = [], 0, False, 0
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "<>":
            depth += 1 if c == "<" else -1
        elif c == "," and not quoted and depth == 0:
            items.append(line[start:i])
            start = i + 1
    items.append(line[start:])
    return items


async def run_scenario(base: str, scenario: dict[str, Any]) -> None:
    """Run one scenario against the app at `base`. Raises Failure, or NotApplicable."""
    keys = {"$key2": f"k2-{uuid.uuid4().hex}", "$key": f"k-{uuid.uuid4().hex}"}
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        if (await client.post("/reset")).status_code != 204:
            raise Failure("POST /reset did not answer 204")
        seen: list[httpx.Response] = []
        running: dict[str, asyncio.Task[httpx.Response]] = {}
        for i, raw in enumerate(scenario["steps"]):
            step = substitute(raw, keys)
            if "send" in step and "concurrent" not in step:
                r = await send(client, step["send"])
                check(i, r, step.get("expect", {}), seen)
                seen.append(r)
                continue
            seen.append(seen[-1] if seen else None)  # type: ignore[arg-type]
            if "background" in step:
                running[step["as"]] = asyncio.create_task(send(client, step["background"]))
            elif "await" in step:
                r = await running.pop(step["await"])
                check(i, r, step.get("expect", {}), seen)
                seen[-1] = r
            elif "sleep" in step:
                await asyncio.sleep(step["sleep"] / 1000)
            elif "count" in step:
                count = (await client.get("/counter")).json()["count"]
                if count != step["count"]:
                    raise Failure(f"step {i}: the handler ran {count} times, expected {step['count']}")
            elif "concurrent" in step:
                await run_concurrent(base, i, step["concurrent"], step["send"], step.get("no_conflicts", False))
            else:
                raise Failure(f"step {i}: unknown step {sorted(step)}")


async def run_concurrent(base: str, i: int, n: int, request: dict[str, Any], no_conflicts: bool = False) -> None:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        responses = await asyncio.gather(*(send(client, request) for _ in range(n)))
    originals = [r for r in responses if r.status_code < 300 and r.headers.get("idempotency-replayed") != "true"]
    replays = [r for r in responses if r.headers.get("idempotency-replayed") == "true"]
    conflicts = [r for r in responses if r.status_code == 409 and r.json().get("code") == "key-in-use"]
    if len(originals) != 1:
        raise Failure(f"step {i}: {len(originals)} of {n} concurrent requests executed (statuses {sorted({r.status_code for r in responses})})")
    if len(originals) + len(replays) + len(conflicts) != n:
        raise Failure(f"step {i}: unexpected answers {sorted({r.status_code for r in responses})}")
    if no_conflicts and conflicts:
        raise Failure(f"step {i}: {len(conflicts)} of {n} duplicates got 409 instead of waiting for the original")
    if any(r.content != originals[0].content for r in replays):
        raise Failure(f"step {i}: a replay differs from the original")
