"""The conformance driver (issue 6): runs language-neutral scenario files against the
fixture apps of tests/fixtures/apps.json and prints a matrix, scenario × integration × store.

    python tests/conformance/driver.py --matrix                       # every app × store
    python tests/conformance/driver.py --matrix --apps rust,asgi --stores memory
    python tests/conformance/driver.py --url http://127.0.0.1:8080 --scenario replay

The scenario format and its runner are in runner.py.
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
from typing import Any

import encryption
import faults
import fleet
import forged
import hostile
import httpx
import waking
from apps import ENCRYPTED, ROOT, Failure, Passed, serving, shared_counter
from runner import NotApplicable, load_scenarios, run_scenario

NOT_APPLICABLE = "n/a: "


async def run_cell(app: str, command: list[str], store: str, scenarios: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """Every scenario against one app on one store: one app process per distinct
    `settings` (most scenarios share the plain one), the scenarios one after another."""
    results: dict[str, str | None] = {}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for name, scenario in scenarios.items():
        groups.setdefault(json.dumps(scenario.get("settings", {}), sort_keys=True), {})[name] = scenario
    for settings, group in groups.items():
        try:
            async with serving(command, store, json.loads(settings)) as (_, base):
                for name, scenario in group.items():
                    results[name] = await outcome(base, scenario)
        except Failure as e:  # the app did not start
            results.update({name: str(e) for name in group})
    return results


async def outcome(base: str, scenario: dict[str, Any]) -> str | None:
    """None when the scenario passed, else why not (`n/a: …` when the server refused)."""
    try:
        await run_scenario(base, scenario)
        return None
    except NotApplicable as e:
        return NOT_APPLICABLE + str(e)
    except Failure as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any error is a failed cell, with its reason
        return f"{type(e).__name__}: {e}"


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


def print_matrix(results: dict[tuple[str, str], dict[str, str | None]], scenarios: list[str]) -> int:
    cells = sorted(results)
    width = max(len(s) for s in scenarios)
    header = " " * width + "  " + "  ".join(f"{a}/{s}" for a, s in cells)
    print(header)
    failures = []
    notes = []
    for name in scenarios:
        row = []
        for cell in cells:
            reason = results[cell].get(name)
            mark = "pass" if reason is None else "n/a" if reason.startswith(NOT_APPLICABLE) else "FAIL"
            row.append(mark.center(len(f"{cell[0]}/{cell[1]}")))
            if mark == "n/a":
                notes.append(f"{name} on {cell[0]}/{cell[1]}: {reason[len(NOT_APPLICABLE):]}")
            elif reason is not None:
                failures.append(f"{name} on {cell[0]}/{cell[1]}: {reason}")
        print(name.ljust(width) + "  " + "  ".join(row))
    print()
    for n in notes:
        print("n/a ", n)
    for f in failures:
        print("FAIL", f)
    total = len(scenarios) * len(cells)
    print(f"conformance: {total - len(failures) - len(notes)} passed, {len(failures)} failed, {len(notes)} not applicable")
    return 1 if failures else 0


FAULTS = {
    "store-down": ("store taken away", faults.run_store_down),
    "fail-open": ("fail open", faults.run_fail_open),
    "killed": ("SIGKILL mid-handler", faults.run_killed),
    "takeover": ("lease takeover", faults.run_takeover),
    "short-lease": ("lease shorter than a store outage", faults.run_short_lease),
    "client-gone": ("client gone", faults.run_disconnect),
    "forged": ("forged record", forged.run_forged),
    "encryption": ("encryption at rest", encryption.run_encryption),
}
# Cells about the host side rather than the store run on every store asked for.
EVERY_STORE = {"client-gone"}
CELLS = ["scenarios", "multi-process", "fleet", "fleet-wait", "wake-up", *FAULTS, "hostile"]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="run against an app already listening here")
    parser.add_argument("--scenario", action="append", help="scenario name (repeatable); default all")
    parser.add_argument("--matrix", action="store_true", help="start every app of apps.json on every store")
    parser.add_argument("--apps", help="comma-separated apps.json names (default all)")
    parser.add_argument(
        "--stores",
        default="memory,redis,postgres,redis-encrypted,postgres-encrypted",
        help="memory, redis, postgres, and the last two with IDEMPO_ENCRYPTION_KEYS set (redis-encrypted, postgres-encrypted)",
    )
    parser.add_argument("--cells", default=",".join(CELLS), help=f"which kinds of cell (default all: {','.join(CELLS)})")
    args = parser.parse_args()
    # Cells of every app run side by side and block threads on raw sockets (slow drips):
    # the default pool (cores + 4 threads) would make them wait for each other.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=128))
    scenarios = load_scenarios(args.scenario)
    if args.url:
        failed = 0
        for name, scenario in scenarios.items():
            reason = await outcome(args.url, scenario)
            failed += reason is not None and not reason.startswith(NOT_APPLICABLE)
            print("pass" if reason is None else "n/a " if reason.startswith(NOT_APPLICABLE) else "FAIL", name, reason or "")
        print(f"conformance: {len(scenarios) - failed} passed, {failed} failed")
        return 1 if failed else 0
    if not args.matrix:
        parser.error("give --url URL or --matrix")
    apps = json.loads((ROOT / "tests" / "fixtures" / "apps.json").read_text())
    chosen = args.apps.split(",") if args.apps else list(apps)
    stores = args.stores.split(",")
    for store in stores:
        server = store.removesuffix(ENCRYPTED)
        if server not in ("memory", "redis", "postgres"):
            parser.error(f"unknown store {store}")
        if server != "memory" and not os.environ.get({"redis": "REDIS_URL", "postgres": "DATABASE_URL"}[server]):
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
    # The fault cells run on the durable stores as they are; the scenarios and the mixed
    # fleet also run on their encrypted variants (B24).
    durable = [s for s in stores if s in ("redis", "postgres")]
    fleets = [s for s in stores if s != "memory"]

    async def per_integration(label: str, runner: Any, on: list[str] | None = None, one_at_a_time: bool = False) -> int:
        """One cell per integration and store (the durable ones unless `on` says which);
        prints them and returns 1 on a failure. The integrations' cells run side by side,
        or `one_at_a_time` where they measure time."""
        failures = 0
        print()
        where = on if on is not None else durable
        for store in where:
            async def outcome(app: str, store: str = store) -> str | None:
                try:
                    return await runner(app, apps[app]["command"], store)
                except Failure as e:
                    return str(e)

            if one_at_a_time:
                outcomes = [await outcome(a) for a in chosen]
            else:
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
    if fleets and len(chosen) > 1 and "fleet" in cells:
        fleet_failures = 0
        total = 0
        print()
        for store in fleets:
            cells_of_store = await fleet.run_fleet(apps, chosen, store)
            for cell, reason in sorted(cells_of_store.items()):
                total += 1
                print(f"mixed fleet on {store}: {cell:<20} {'pass' if reason is None else 'FAIL ' + reason}")
                fleet_failures += reason is not None
        print(f"conformance: {total - fleet_failures} passed, {fleet_failures} failed")
        code = code or (1 if fleet_failures else 0)
    if durable and len(chosen) > 1 and "fleet-wait" in cells:
        waits_failed, total = 0, 0
        print()
        for store in durable:
            for cell, reason in sorted((await waking.run_fleet_wait(apps, chosen, store)).items()):
                total += 1
                passed = reason is None or isinstance(reason, Passed)
                print(f"mixed-fleet waiting on {store}: {cell:<34} {'pass' if passed else 'FAIL'} {reason or ''}")
                waits_failed += not passed
        print(f"conformance: {total - waits_failed} passed, {waits_failed} failed")
        code = code or (1 if waits_failed else 0)
    if durable and "wake-up" in cells:
        code = await per_integration("wake-up latency", waking.run_wake_latency, one_at_a_time=True) or code
    for cell, (label, runner) in FAULTS.items():
        where = [s for s in stores if not s.endswith(ENCRYPTED)] if cell in EVERY_STORE else durable
        if where and cell in cells:
            code = await per_integration(label, runner, where) or code
    # Hostile input is about the HTTP side; one store is enough (the first asked for).
    if "hostile" in cells:
        code = await per_integration("hostile input", hostile.run_hostile, stores[:1]) or code
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
