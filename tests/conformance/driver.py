"""The conformance driver (issue 6): runs language-neutral scenario files against the
fixture apps of tests/fixtures/apps.json and prints a matrix, scenario × integration × store.

    python tests/conformance/driver.py --matrix                       # every app × store
    python tests/conformance/driver.py --matrix --apps rust,asgi --stores memory
    python tests/conformance/driver.py --url http://127.0.0.1:8080 --scenario replay

A scenario is a JSON file in scenarios/: a list of steps, each one of
  {"send": REQUEST, "expect": EXPECT}      one request, checked
  {"background": REQUEST, "as": "name"}    a request left running
  {"await": "name", "expect": EXPECT}      wait for it, check it
  {"sleep": ms}
  {"count": n}                             GET /counter equals n (the scenario starts at /reset)
  {"concurrent": n, "send": REQUEST}       n at once: exactly one original, the rest replays
                                           of it or 409 key-in-use; one execution
REQUEST: {"method", "path", "key", "key_len", "body", "body_bytes", "headers"}; "$key" and "$key2" in
strings are replaced by keys unique to the run. EXPECT: {"status", "replayed", "body",
"body_len", "same_body_as", "problem", "headers", "header_absent", "retry_after_min"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faults
import hostile
import httpx
from apps import ROOT, Failure, Passed, serving, shared_counter, start, started, stop

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"


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
    return await client.request(request.get("method", "POST"), request["path"], content=body, headers=headers)


def check(step: int, r: httpx.Response, expect: dict[str, Any], seen: list[httpx.Response]) -> None:
    def fail(why: str) -> None:
        raise Failure(f"step {step}: {why} (got {r.status_code}: {r.text[:160]!r})")

    if "status" in expect and r.status_code != expect["status"]:
        fail(f"status {r.status_code}, expected {expect['status']}")
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
    for name in expect.get("header_absent", []):
        if name in r.headers:
            fail(f"header {name} should be absent")
    if "retry_after_min" in expect and int(r.headers.get("retry-after", "0")) < expect["retry_after_min"]:
        fail(f"Retry-After {r.headers.get('retry-after')!r}")


async def run_scenario(base: str, scenario: dict[str, Any]) -> None:
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
                await run_concurrent(base, i, step["concurrent"], step["send"])
            else:
                raise Failure(f"step {i}: unknown step {sorted(step)}")


async def run_concurrent(base: str, i: int, n: int, request: dict[str, Any]) -> None:
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
    if any(r.content != originals[0].content for r in replays):
        raise Failure(f"step {i}: a replay differs from the original")


async def run_cell(app: str, command: list[str], store: str, scenarios: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    try:
        async with serving(command, store) as (_, base):
            for name, scenario in scenarios.items():
                try:
                    await run_scenario(base, scenario)
                    results[name] = None
                except Failure as e:
                    results[name] = str(e)
                except Exception as e:  # noqa: BLE001 - any error is a failed cell, with its reason
                    results[name] = f"{type(e).__name__}: {e}"
    except Failure as e:  # the app did not start
        return {name: str(e) for name in scenarios}
    return results


async def run_multi(app: str, command: list[str], store: str) -> str | None:
    """Two or more processes of one integration behind one durable store: 200 concurrent
    duplicates spread across them execute once. Rust runs two servers on two ports; the
    others run their own multi-process servers (uvicorn/gunicorn workers, node:cluster)."""
    key = f"multi-{uuid.uuid4().hex}"
    with shared_counter() as env:
        async with contextlib.AsyncExitStack() as stack:
            servers = [await stack.enter_async_context(serving(command, store, {**env, "WORKERS": "2"})) for _ in range(2 if app == "rust" else 1)]
            bases = [base for _, base in servers]
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=60, limits=limits) as http:
                if (await http.post(bases[0] + "/reset")).status_code != 204:
                    return "POST /reset failed"
                responses = await asyncio.gather(*(
                    http.post(bases[i % len(bases)] + "/slow?ms=300", content=b"same", headers={"Idempotency-Key": key})
                    for i in range(200)))
                count = (await http.get(bases[0] + "/counter")).json()["count"]
    originals = [r for r in responses if r.status_code == 200 and r.headers.get("idempotency-replayed") != "true"]
    others = [r for r in responses if r.headers.get("idempotency-replayed") == "true" or r.status_code == 409]
    pids = {r.headers.get("x-pid") for r in responses} - {None}
    if len(originals) != 1 or len(originals) + len(others) != 200:
        return f"{len(originals)} executions answered (statuses {sorted({r.status_code for r in responses})})"
    if count != 1:
        return f"the handler ran {count} times across the processes"
    if app != "rust" and len(pids) < 2:
        return f"only one process answered (pids {sorted(pids)})"
    return None


async def run_fleet(apps: dict[str, Any], names: list[str], store: str) -> dict[str, str | None]:
    """Mixed fleet: every app on one shared store; a request executed through each app is
    replayed through every other, byte for byte (status, replayable headers, body)."""
    procs = {name: start(apps[name]["command"], store) for name in names}
    results: dict[str, str | None] = {}
    try:
        for name, (proc, port) in procs.items():
            why = await started(proc, port)
            if why:
                return {f"{a}->*": f"{name}: {why}" for a in names}
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            for source in names:
                key = f"fleet-{uuid.uuid4().hex}"
                body = f"made by {source} \u00e9".encode()
                headers = {"Idempotency-Key": key, "Content-Type": "text/plain; charset=utf-8"}
                url = lambda app: f"http://127.0.0.1:{procs[app][1]}/echo?via=fleet"  # noqa: E731
                original = await client.post(url(source), content=body, headers=headers)
                for target in names:
                    if target == source:
                        continue
                    cell = f"{source}->{target}"
                    r = await client.post(url(target), content=body, headers=headers)
                    if original.status_code != 201:
                        results[cell] = f"the original through {source} answered {original.status_code}"
                    elif r.headers.get("idempotency-replayed") != "true":
                        results[cell] = f"not replayed: {r.status_code} {r.text[:80]!r}"
                    elif (r.status_code, r.content, r.headers.get("content-type")) != (
                        original.status_code, original.content, original.headers.get("content-type")):
                        results[cell] = f"replay differs: {r.status_code} {r.headers.get('content-type')!r} {r.content[:60]!r}"
                    else:
                        results[cell] = None
    finally:
        for proc, _ in procs.values():
            stop(proc)
    return results


def print_matrix(results: dict[tuple[str, str], dict[str, str | None]], scenarios: list[str]) -> int:
    cells = sorted(results)
    width = max(len(s) for s in scenarios)
    header = " " * width + "  " + "  ".join(f"{a}/{s}" for a, s in cells)
    print(header)
    failures = []
    for name in scenarios:
        row = []
        for cell in cells:
            reason = results[cell].get(name)
            mark = "pass" if reason is None else "FAIL"
            row.append(mark.center(len(f"{cell[0]}/{cell[1]}")))
            if reason is not None:
                failures.append(f"{name} on {cell[0]}/{cell[1]}: {reason}")
        print(name.ljust(width) + "  " + "  ".join(row))
    print()
    for f in failures:
        print("FAIL", f)
    total = len(scenarios) * len(cells)
    print(f"conformance: {total - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


FAULTS = {
    "store-down": ("store taken away", faults.run_store_down),
    "fail-open": ("fail open", faults.run_fail_open),
    "killed": ("SIGKILL mid-handler", faults.run_killed),
    "takeover": ("lease takeover", faults.run_takeover),
    "client-gone": ("client gone", faults.run_disconnect),
}
CELLS = ["scenarios", "multi-process", "fleet", *FAULTS, "hostile"]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="run against an app already listening here")
    parser.add_argument("--scenario", action="append", help="scenario name (repeatable); default all")
    parser.add_argument("--matrix", action="store_true", help="start every app of apps.json on every store")
    parser.add_argument("--apps", help="comma-separated apps.json names (default all)")
    parser.add_argument("--stores", default="memory,redis,postgres")
    parser.add_argument("--cells", default=",".join(CELLS), help=f"which kinds of cell (default all: {','.join(CELLS)})")
    args = parser.parse_args()
    # Cells of every app run side by side and block threads on raw sockets (slow drips):
    # the default pool (cores + 4 threads) would make them wait for each other.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=128))
    scenarios = load_scenarios(args.scenario)
    if args.url:
        failed = 0
        for name, scenario in scenarios.items():
            try:
                await run_scenario(args.url, scenario)
                print(f"pass {name}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {e}")
        print(f"conformance: {len(scenarios) - failed} passed, {failed} failed")
        return 1 if failed else 0
    if not args.matrix:
        parser.error("give --url URL or --matrix")
    apps = json.loads((ROOT / "tests" / "fixtures" / "apps.json").read_text())
    chosen = args.apps.split(",") if args.apps else list(apps)
    stores = args.stores.split(",")
    for store in stores:
        if store != "memory" and not os.environ.get({"redis": "REDIS_URL", "postgres": "DATABASE_URL"}[store]):
            raise SystemExit(f"{store}: set REDIS_URL / DATABASE_URL (make test starts throwaway servers)")
    cells = args.cells.split(",")
    if unknown := set(cells) - set(CELLS):
        parser.error(f"unknown cells {sorted(unknown)}; have {', '.join(CELLS)}")
    results: dict[tuple[str, str], dict[str, str | None]] = {}
    # Cells of different apps run side by side; one app's cells one after another.
    async def per_app(app: str) -> None:
        for store in stores:
            results[(app, store)] = await run_cell(app, apps[app]["command"], store, scenarios)

    code = 0
    if "scenarios" in cells:
        await asyncio.gather(*(per_app(a) for a in chosen))
        code = print_matrix(results, list(scenarios))
    durable = [s for s in stores if s != "memory"]

    async def per_integration(label: str, runner: Any, on: list[str] | None = None) -> int:
        """One cell per integration and store (the durable ones unless `on` says which);
        prints them and returns 1 on a failure."""
        failures = 0
        print()
        where = on if on is not None else durable
        for store in where:
            async def outcome(app: str) -> str | None:
                try:
                    return await runner(app, apps[app]["command"], store)
                except Failure as e:
                    return str(e)

            outcomes = await asyncio.gather(*(outcome(a) for a in chosen))
            for app, reason in zip(chosen, outcomes):
                failed = reason is not None and not isinstance(reason, Passed)
                mark = f"FAIL {reason}" if failed else "pass" + (f" ({reason})" if reason else "")
                print(f"{label} on {store}: {app:<10} {mark}")
                failures += failed
        print(f"conformance: {len(where) * len(chosen) - failures} passed, {failures} failed")
        return 1 if failures else 0

    if durable and "multi-process" in cells:
        code = await per_integration("multi-process", run_multi) or code
    if durable and len(chosen) > 1 and "fleet" in cells:
        fleet_failures = 0
        total = 0
        print()
        for store in durable:
            fleet = await run_fleet(apps, chosen, store)
            for cell, reason in sorted(fleet.items()):
                total += 1
                print(f"mixed fleet on {store}: {cell:<20} {'pass' if reason is None else 'FAIL ' + reason}")
                fleet_failures += reason is not None
        print(f"conformance: {total - fleet_failures} passed, {fleet_failures} failed")
        code = code or (1 if fleet_failures else 0)
    for cell, (label, runner) in FAULTS.items():
        if durable and cell in cells:
            code = await per_integration(label, runner) or code
    # Hostile input is about the HTTP side; one store is enough (the first asked for).
    if "hostile" in cells:
        code = await per_integration("hostile input", hostile.run_hostile, stores[:1]) or code
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
