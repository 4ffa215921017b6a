"""`make bench`, waiting (issue 16, B20): a duplicate-heavy workload, with the duplicates
waiting for their original (`Prefer: wait=5`) against the same duplicates taking the 409
and retrying after its `Retry-After`, as a well-behaved client does.

For each fixture app on Redis and PostgreSQL, and each mode, ROUNDS rounds of: KEYS new
keys at once, each sent once (`/slow?ms=300`, the original), then DUPLICATES duplicates of
each 50 ms later. A duplicate in the `retry` mode that gets 409 sleeps `Retry-After`
seconds and sends again, until it succeeds; in the `wait` mode it sends once with
`Prefer: wait=5` (and would retry the same way on a 409). Measured: requests sent per
success, and the time from a duplicate's first send to its success (p50, p99). Every run
is checked: every request ends in a 200 and each key's handler ran once.

Stdlib only. `--write FILE` puts the table into FILE between the `<!-- waiting:begin -->`
and `<!-- waiting:end -->` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import machine, write

KEYS = 8
DUPLICATES = 12
HANDLER_MS = 300
ROUNDS = 3
MODES = ["retry", "wait"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def post(port: int, path: str, key: str, prefer: str | None) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"Prefer: {prefer}\r\n" if prefer else ""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nIdempotency-Key: {key}\r\n{extra}Content-Length: 0\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return int(head[0].split()[1]), headers


async def until_success(port: int, key: str, mode: str) -> tuple[int, float]:
    """Send until a 200: (requests sent, seconds from the first send)."""
    started = time.monotonic()
    sent = 0
    prefer = "wait=5" if mode == "wait" else None
    while True:
        sent += 1
        status, headers = await post(port, f"/slow?ms={HANDLER_MS}", key, prefer)
        if status == 200:
            return sent, time.monotonic() - started
        if status != 409:
            raise RuntimeError(f"a duplicate got {status}")
        await asyncio.sleep(float(headers.get("retry-after", "1")))


async def one_round(port: int, mode: str) -> tuple[int, int, list[float]]:
    keys = [f"wait-bench-{uuid.uuid4().hex}" for _ in range(KEYS)]
    originals = [asyncio.create_task(until_success(port, k, mode)) for k in keys]
    await asyncio.sleep(0.05)
    dups = await asyncio.gather(*(until_success(port, k, mode) for k in keys for _ in range(DUPLICATES)))
    firsts = await asyncio.gather(*originals)
    sent = sum(s for s, _ in dups) + sum(s for s, _ in firsts)
    return sent, len(dups) + len(firsts), [t for _, t in dups]


def counter(port: int) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/counter", timeout=10) as r:
        return int(json.loads(r.read())["count"])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def run(app: str, command: list[str], store: str, url: str) -> list[dict]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "IDEMPO_STORE": url, "IDEMPO_REQUIRED": "0"}
    proc = subprocess.Popen([str(ROOT / command[0]), *command[1:]], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                counter(port)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.2)
        rows = []
        for mode in MODES:
            sent = succeeded = 0
            times: list[float] = []
            before = counter(port)
            for _ in range(ROUNDS):
                s, n, t = asyncio.run(one_round(port, mode))
                sent, succeeded, times = sent + s, succeeded + n, times + t
            ran = counter(port) - before
            if ran != ROUNDS * KEYS:
                raise RuntimeError(f"{app}/{store}/{mode}: the handler ran {ran} times for {ROUNDS * KEYS} keys")
            rows.append({
                "app": app, "store": store, "mode": mode,
                "requests_per_success": sent / succeeded,
                "p50_ms": percentile(times, 0.5) * 1000, "p99_ms": percentile(times, 0.99) * 1000,
            })  # fmt: skip
            print(f"{app:<8} {store:<9} {mode:<6} {rows[-1]['requests_per_success']:.2f} requests/success, "
                  f"p50 {rows[-1]['p50_ms']:.0f} ms, p99 {rows[-1]['p99_ms']:.0f} ms", flush=True)  # fmt: skip
        return rows
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def table(rows: list[dict]) -> str:
    lines = [
        (
            f"Run on {machine()}, {time.strftime('%Y-%m-%d')}: `make bench` (benches/http/waiting.py), release builds; "
            f"{ROUNDS} rounds of {KEYS} keys × {DUPLICATES} duplicates of a {HANDLER_MS} ms handler."
        ),
        "",
        "| app | store | 409 + retry: requests per success | p50 | p99 | wait: requests per success | p50 | p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["app"], r["store"], r["mode"]): r for r in rows}
    for app, store in dict.fromkeys((r["app"], r["store"]) for r in rows):
        cells = []
        for mode in MODES:
            r = by[(app, store, mode)]
            cells += [f"{r['requests_per_success']:.2f}", f"{r['p50_ms']:.0f} ms", f"{r['p99_ms']:.0f} ms"]
        lines.append(f"| {app} | {store} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", help="comma-separated fixture apps (default all)")
    parser.add_argument("--stores", default="redis,postgres")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    apps = json.loads((ROOT / "tests" / "fixtures" / "apps.json").read_text())
    chosen = args.apps.split(",") if args.apps else list(apps)
    urls = {"redis": os.environ.get("REDIS_URL"), "postgres": os.environ.get("DATABASE_URL")}
    rows = []
    for store in args.stores.split(","):
        if not urls.get(store):
            raise SystemExit(f"{store}: set REDIS_URL / DATABASE_URL (scripts/with-services.sh)")
        for app in chosen:
            rows += run(app, apps[app]["command"], store, urls[store])  # type: ignore[arg-type]
    text = table(rows)
    print(text)
    if args.write:
        write(args.write, text, marker="waiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
