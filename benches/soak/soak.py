"""make soak (issue 8): sustained mixed load on every fixture app, one store at a time,
checking that nothing runs twice and that memory stays flat.

For each store, every fixture app of tests/fixtures/apps.json runs (optimised builds)
and idempo-load drives it with the `mixed` workload (no key, new keys, retries of answered
keys) in back-to-back batches: SOAK_WARMUP (default 300) seconds of warm-up, then
SOAK_SECONDS (default 600) judged. Every batch is checked: no error, and the handler ran
exactly as often as the workload implies (no duplicate execution). The resident memory
of each app's processes is sampled every 10 s; after the warm-up it must stay within
10 % (at least 16 MiB) of the highest it reached during the warm-up. Records expire after
60 s, so the memory store fills to its steady size early in the warm-up.

    python3 benches/soak/soak.py [--stores memory,redis,postgres] [--apps rust,asgi] [--seconds 600]
                                 [--write benches/README.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "conformance"))
from apps import rss_of_tree
from bench import BenchError, Server, check, load, load_apps, machine, write

BATCH = {"rust": 20_000, "asgi": 4_000, "wsgi": 1_000, "express": 3_000, "fastify": 4_000}
CONCURRENCY = 8
SAMPLE_EVERY = 10.0


@dataclass
class Soak:
    name: str
    server: Server
    requests: int = 0
    executions: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    error: str | None = None

    def drive(self, until: float) -> None:
        """Batches of the mixed workload until `until`, each checked against the counter."""
        n = 0
        batch = BATCH.get(self.name, 2_000)
        try:
            while time.monotonic() < until:
                before = self.server.counter()
                result = load(self.server.url, "mixed", batch, f"soak-{self.name}-{time.time_ns():x}-{n}", CONCURRENCY)
                check(self.server, "mixed", result, self.server.counter() - before)
                self.requests += batch
                self.executions += result["executions"]
                n += 1
        except BenchError as e:
            self.error = str(e)


def verdict(soak: Soak, judged_from: float) -> tuple[bool, str]:
    """Flat: from the end of the warm-up on, RSS stays within 10 % (at least 16 MiB) of
    the highest it reached during the warm-up. Garbage-collected heaps (V8, CPython) breathe
    by tens of MiB and take minutes to find their size; a leak keeps climbing."""
    warm = [rss for t, rss in soak.samples if t < judged_from]
    judged = [rss for t, rss in soak.samples if t >= judged_from]
    if not warm or not judged:
        return False, "too few memory samples"
    base, peak = max(warm), max(judged)
    allowed = max(base * 0.10, 16 * 2**20)
    series = " ".join(f"{rss / 2**20:.0f}" for _, rss in soak.samples[:: round(60 / SAMPLE_EVERY)])
    ok = soak.error is None and peak - base <= allowed
    return ok, f"RSS MiB by minute {series}; warm-up peak {base / 2**20:.0f}, peak after it {peak / 2**20:.0f} (allowed +{allowed / 2**20:.0f})"


Row = tuple[str, str, bool, str]  # store, app, passed, figures


def soak_store(store: str, url: str, names: list[str], warmup: float, seconds: float) -> list[Row]:
    apps = {a.name: a for a in load_apps(set(names), with_peers=False)}
    os.environ["IDEMPO_TTL_MS"] = "60000"
    soaks = []
    try:
        for name in names:
            soaks.append(Soak(name, Server(apps[name], url, bare=False)))
        judged_from = time.monotonic() + warmup
        until = judged_from + seconds
        threads = [threading.Thread(target=s.drive, args=(until,)) for s in soaks]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            now = time.monotonic()
            for s in soaks:
                s.samples.append((now, rss_of_tree(s.server.proc.pid)))
            time.sleep(SAMPLE_EVERY)
        for t in threads:
            t.join()
        rows = []
        for s in soaks:
            ok, memory = verdict(s, judged_from)
            detail = s.error or f"{s.requests} requests, {s.executions} executions, 0 duplicates; {memory}"
            print(f"soak {store:8} {s.name:8} {'pass' if ok else 'FAIL'} {detail}", flush=True)
            rows.append((store, s.name, ok, detail))
        return rows
    finally:
        for s in soaks:
            s.server.stop()


def table(rows: list[Row], warmup: float, seconds: float) -> str:
    lines = [
        (
            f"Machine: {machine()}. {warmup:.0f} s of warm-up, then {seconds:.0f} s judged, of the `mixed` workload "
            f"per store, {CONCURRENCY} connections per app, all five apps at once; memory is the resident size of "
            "the app's processes."
        ),

        "",
        "| store | app | verdict | figures |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {store} | {app} | {'pass' if ok else 'FAIL'} | {figures} |" for store, app, ok, figures in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="memory,redis,postgres")
    parser.add_argument("--apps", default="rust,asgi,wsgi,express,fastify")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--warmup", type=float, default=float(os.environ.get("SOAK_WARMUP", "300")))
    parser.add_argument("--write", type=Path, help="put the results table between the soak markers of this file")
    args = parser.parse_args()
    urls = {"memory": "memory", "redis": os.environ.get("REDIS_URL", ""), "postgres": os.environ.get("DATABASE_URL", "")}
    print(f"soak: {machine()}; {args.warmup:.0f} s warm-up and {args.seconds:.0f} s per store, mixed workload, {CONCURRENCY} connections per app", flush=True)
    rows: list[Row] = []
    for store in args.stores.split(","):
        if not urls[store]:
            print(f"soak: {store}: set REDIS_URL / DATABASE_URL (make soak starts throwaway servers)", file=sys.stderr)
            return 1
        rows += soak_store(store, urls[store], args.apps.split(","), args.warmup, args.seconds)
    failures = sum(not ok for _, _, ok, _ in rows)
    print(f"soak: {len(rows) - failures} passed, {failures} failed")
    if args.write:
        write(args.write, table(rows, args.warmup, args.seconds), "soak")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
