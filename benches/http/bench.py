"""`make bench`: every integration's fixture app, and the peer libraries' apps, under the
same HTTP load, side by side in one run (benches/README.md, "HTTP: every integration").

For each app and store it starts the bare app (IDEMPO_BARE=1) and the app behind its
middleware, then runs each workload of `idempo-load` (benches/src/bin/load.rs) for
--rounds alternating rounds, a warm-up before every measured run:

    bare         the bare app, no key
    passthrough  the middleware, no key
    first        a new key on every request
    replay       one key, executed once beforehand
    mixed        2/10 no key, 4/10 a new key, 4/10 a repeat of the last new key

Every measured run is checked: zero errors, and the handler ran exactly as often as the
workload says (`GET /counter` before and after). Round trips to the store are counted on
the servers (Redis `INFO commandstats`, PostgreSQL `pg_stat_statements`) over the measured
requests. Medians of the rounds go into a table; `--write FILE` puts it in FILE between the
`<!-- bench:begin -->` and `<!-- bench:end -->` markers.

Stdlib only; needs REDIS_URL and DATABASE_URL for those stores (scripts/with-services.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 32
# Requests per measured run, per app: a few seconds each on a 2-core machine.
REQUESTS = {
    "rust": 40_000,
    "asgi": 12_000,
    "wsgi": 3_000,
    "express": 8_000,
    "fastify": 15_000,
    "asgi-idempotency-header": 6_000,
    "node-idempotency": 8_000,
    "node-idempotency-fastify": 12_000,
    "express-idempotency": 6_000,
}
WORKLOADS = ["bare", "passthrough", "first", "replay", "mixed"]


class BenchError(Exception):
    pass


@dataclass
class App:
    name: str
    command: list[str]
    stores: list[str]
    env: dict[str, str] = field(default_factory=dict)
    peer: bool = False
    language: str = ""
    compare_with: str = ""
    # idempo on a peer's own app (benches/peers/apps.json, "ours"): that peer's name.
    same_app_as: str = ""


def load_apps(only: set[str] | None, with_peers: bool) -> list[App]:
    language = {"rust": "rust", "asgi": "python", "wsgi": "python", "express": "node", "fastify": "node"}
    apps = [
        App(name, spec["command"], spec["stores"], language=language.get(name, ""))
        for name, spec in json.loads((ROOT / "tests/fixtures/apps.json").read_text()).items()
    ]
    if with_peers:
        apps += [
            App(
                name,
                spec["command"],
                spec["stores"],
                spec.get("env", {}),
                not spec.get("ours", False),
                spec["language"],
                spec["compare_with"],
                spec.get("same_app_as", ""),
            )
            for name, spec in json.loads((ROOT / "benches/peers/apps.json").read_text()).items()
        ]
    return [a for a in apps if only is None or a.name in only]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One app process on a free loopback port."""

    def __init__(self, app: App, store_url: str, bare: bool) -> None:
        self.port = free_port()
        env = {**os.environ, **app.env, "PORT": str(self.port), "IDEMPO_STORE": store_url, "IDEMPO_REQUIRED": "0"}
        # A fixed hash seed: with a random one, the same Python app's CPU per request moved
        # by ±15% from one process start to the next (dict layouts), more than the
        # differences measured here.
        env["PYTHONHASHSEED"] = "0"
        env.pop("IDEMPO_COUNTER_FILE", None)
        if bare:
            env["IDEMPO_BARE"] = "1"
        else:
            env.pop("IDEMPO_BARE", None)
        self.label = f"{app.name} ({'bare' if bare else store_url})"
        self.proc = subprocess.Popen(
            [str(ROOT / app.command[0]), *app.command[1:]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BenchError(f"{self.label} exited at start: {err.strip()[-2000:]}")
            try:
                self.counter()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.label} did not answer on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/echo"

    def counter(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/counter", timeout=5) as res:
            return int(json.loads(res.read())["count"])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every process of the app (a server's
        workers are in its process group)."""
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command: state ppid pgrp … utime (12th) stime (13th).
            if int(fields[2]) == self.proc.pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class RoundTrips:
    """Round trips to the store, counted on its server: the commands clients sent to Redis
    (MONITOR lines from a client address; commands a Lua script runs show as `lua` and are
    not round trips), or the statements PostgreSQL executed (`pg_stat_statements`).

    MONITOR slows Redis down, so counting has runs of its own, never the timed ones."""

    def __init__(self, store: str, url: str) -> None:
        self.store, self.url = store, url
        self._monitor: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lines = 0
        self._start = 0
        self._marker = b""
        self._marked = threading.Event()
        if store == "postgres":
            self._psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _psql(self, sql: str) -> str:
        out = subprocess.run(["psql", self.url, "-XAtqc", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise BenchError(f"psql: {out.stderr.strip()} (pg_stat_statements must be loaded: scripts/with-services.sh)")
        return out.stdout.strip()

    def _redis_socket(self) -> socket.socket:
        u = urlparse(self.url)
        return socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10)

    @staticmethod
    def _command(*words: str) -> bytes:
        return (f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)).encode()

    def _pg_total(self) -> int:
        return int(
            self._psql(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%TRUNCATE%'"
            )
        )

    def start(self) -> None:
        if self.store == "postgres":
            self._start = self._pg_total()
            return
        self._lines = 0
        self._marker = f"idempo-bench-marker-{time.time_ns()}".encode()
        self._marked.clear()
        self._monitor = self._redis_socket()
        self._monitor.sendall(self._command("MONITOR"))
        ok = self._monitor.recv(5)
        if not ok.startswith(b"+OK"):
            raise BenchError(f"redis MONITOR: {ok!r}")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # A line per command: `+<time> [<db> <client address>|lua] "<COMMAND>" ...`.
        client = re.compile(rb'^\+[0-9.]+ \[\d+ (?!lua\])')
        pending = b""
        assert self._monitor is not None
        self._monitor.settimeout(None)
        while True:
            try:
                chunk = self._monitor.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\r\n")
            for line in lines:
                if self._marker in line:
                    self._marked.set()
                elif client.match(line):
                    self._lines += 1

    def stop(self) -> int:
        """Round trips since `start`."""
        if self.store == "postgres":
            return self._pg_total() - self._start
        # A marker command, then wait until the monitor has seen it: every command sent
        # before it has been counted.
        with self._redis_socket() as s:
            s.sendall(self._command("ECHO", self._marker.decode()))
            s.recv(1024)
        if not self._marked.wait(30):
            raise BenchError("redis MONITOR: the marker command never showed")
        assert self._monitor is not None
        # shutdown, not just close: it wakes the reader blocked in recv, which must be gone
        # before the next MONITOR socket can take the same descriptor number.
        self._monitor.shutdown(socket.SHUT_RDWR)
        if self._thread:
            self._thread.join(10)
        self._monitor.close()
        return self._lines

    def clear(self) -> None:
        """Start an app's run on an empty store (keys of earlier apps cost memory, not time)."""
        if self.store == "redis":
            with self._redis_socket() as s:
                s.sendall(self._command("FLUSHALL"))
                s.recv(1024)
        else:
            self._psql("DO $$ BEGIN IF to_regclass('idempo_records') IS NOT NULL THEN TRUNCATE idempo_records; END IF; END $$")


def load(url: str, workload: str, requests: int, prefix: str, concurrency: int = CONCURRENCY) -> dict:
    binary = os.environ.get("IDEMPO_LOAD") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/idempo-target"))
        / os.environ.get("CARGO_BUILD_TARGET", "x86_64-unknown-linux-gnu")
        / "release/idempo-load"
    )
    argv = [binary, "--url", url, "--workload", workload, "--requests", str(requests)]
    argv += ["--concurrency", str(concurrency), "--key-prefix", prefix]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"idempo-load {workload} on {url}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def measure(server: Server, workload: str, requests: int, tag: str) -> dict:
    """A warm-up, then one measured run of `workload`, checked."""
    kind = "nokey" if workload in ("bare", "passthrough") else workload
    if kind == "replay":
        load(server.url, "replay", 1, tag, concurrency=1)  # the one execution
    # A fifth of the run first: V8 and the CPython specializer settle, pools fill.
    load(server.url, kind, max(requests // 5, 1000), f"{tag}-warm" if kind != "replay" else tag)
    before, cpu = server.counter(), server.cpu_seconds()
    result = load(server.url, kind, requests, tag)
    result["cpu_us"] = (server.cpu_seconds() - cpu) / requests * 1e6
    check(server, workload, result, server.counter() - before)
    return result


def check(server: Server, workload: str, result: dict, executed: int) -> None:
    if result["errors"]:
        raise BenchError(f"{server.label} {workload}: {result['errors']} errors, first: {result['first_error']}")
    if executed != result["executions"]:
        raise BenchError(f"{server.label} {workload}: the handler ran {executed} times, expected {result['executions']}")


COUNTED = 1000


def count_round_trips(server: Server, workload: str, trips: RoundTrips, tag: str) -> float:
    """Store round trips per request of `workload`, over COUNTED requests (not timed)."""
    kind = "nokey" if workload == "passthrough" else workload
    if kind == "replay":
        load(server.url, "replay", 1, tag, concurrency=1)
    before = server.counter()
    trips.start()
    try:
        result = load(server.url, kind, COUNTED, tag)
    finally:
        counted = trips.stop()
    check(server, workload, result, server.counter() - before)
    return counted / COUNTED


def run_app(
    app: App, stores: list[str], rounds: int, scale: float, urls: dict[str, str], workloads: list[str] = WORKLOADS
) -> list[dict]:
    requests = max(int(REQUESTS.get(app.name, 10_000) * scale), 500)
    rows = []
    for store in [s for s in app.stores if s in stores]:
        store_url = urls[store]
        trips = RoundTrips(store, store_url) if store != "memory" else None
        if trips:
            trips.clear()
        bare, wrapped = Server(app, "memory", bare=True), None
        try:
            wrapped = Server(app, store_url, bare=False)
            runs: dict[str, list[dict]] = {w: [] for w in workloads}
            for r in range(rounds):
                for workload in workloads:
                    target = bare if workload == "bare" else wrapped
                    tag = f"{app.name}-{store}-{workload}-{r}-{time.time_ns():x}"
                    res = measure(target, workload, requests, tag)
                    runs[workload].append(res)
                    print(
                        f"  {app.name:24} {store:8} {workload:11} round {r + 1}: {res['rps']:>9.0f} req/s"
                        f"  p50 {res['p50_us']:>6} µs  p99 {res['p99_us']:>6} µs  server CPU {res['cpu_us']:>6.1f} µs",
                        flush=True,
                    )
            counted: dict[str, float] = {}
            if trips:
                for workload in workloads[1:]:
                    tag = f"{app.name}-{store}-{workload}-count-{time.time_ns():x}"
                    counted[workload] = count_round_trips(wrapped, workload, trips, tag)
                    print(f"  {app.name:24} {store:8} {workload:11} {counted[workload]:.3f} round trips", flush=True)
        finally:
            bare.stop()
            if wrapped:
                wrapped.stop()
        bare_rps = statistics.median(r["rps"] for r in runs["bare"])
        for workload in workloads:
            rps = statistics.median(r["rps"] for r in runs[workload])
            # Each round's ratio to the bare app measured in the same round: the spread.
            paired = [w["rps"] / b["rps"] for w, b in zip(runs[workload], runs["bare"])]
            rows.append(
                {
                    "app": app.name,
                    "peer": app.peer,
                    "language": app.language,
                    "compare_with": app.compare_with,
                    "store": store,
                    "workload": workload,
                    "requests": requests,
                    "rounds": rounds,
                    "rps": rps,
                    "p50_us": statistics.median(r["p50_us"] for r in runs[workload]),
                    "p99_us": statistics.median(r["p99_us"] for r in runs[workload]),
                    "cpu_us": statistics.median(r["cpu_us"] for r in runs[workload]),
                    "errors": sum(r["errors"] for r in runs[workload]),
                    "ratio": rps / bare_rps,
                    "round_ratios": paired,
                    "round_trips": counted.get(workload),
                }
            )
    return rows


def versus(ours: App, peer: App, store: str, rounds: int, scale: float, urls: dict[str, str]) -> dict:
    """idempo and a peer on the peer's own app, first executions on `store`, measured in
    the same rounds against one bare process of that app: per round the bare app, then the
    two (in alternating order), so each round's two ratios share their bare run and a slow
    drift of the machine moves all three. The two libraries' apps are one file
    (benches/peers/), `PEER=idempo` putting idempo where the peer goes."""
    requests = max(int(REQUESTS.get(peer.name, 10_000) * scale), 500)
    RoundTrips(store, urls[store]).clear()
    servers: dict[str, Server] = {}
    try:
        servers["bare"] = Server(peer, "memory", bare=True)
        servers["ours"] = Server(ours, urls[store], bare=False)
        servers["peer"] = Server(peer, urls[store], bare=False)
        runs: dict[str, list[dict]] = {k: [] for k in servers}
        for r in range(rounds):
            order = ["bare", "ours", "peer"] if r % 2 == 0 else ["bare", "peer", "ours"]
            for who in order:
                workload = "bare" if who == "bare" else "first"
                res = measure(servers[who], workload, requests, f"versus-{who}-{store}-{r}-{time.time_ns():x}")
                runs[who].append(res)
                print(
                    f"  versus {peer.name:24} {store:6} {who:5} round {r + 1}: {res['rps']:>9.0f} req/s"
                    f"  server CPU {res['cpu_us']:>6.1f} µs",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    ratio = {who: [w["rps"] / b["rps"] for w, b in zip(runs[who], runs["bare"])] for who in ("ours", "peer")}
    return {
        "app": peer.name,
        "ours": ours.name,
        "store": store,
        "rounds": rounds,
        "requests": requests,
        "bare_rps": statistics.median(x["rps"] for x in runs["bare"]),
        "ours_rps": statistics.median(x["rps"] for x in runs["ours"]),
        "peer_rps": statistics.median(x["rps"] for x in runs["peer"]),
        "ours_cpu_us": statistics.median(x["cpu_us"] for x in runs["ours"]),
        "peer_cpu_us": statistics.median(x["cpu_us"] for x in runs["peer"]),
        "ours_ratio": statistics.median(ratio["ours"]),
        "peer_ratio": statistics.median(ratio["peer"]),
        "ours_over_peer": [o / p for o, p in zip(ratio["ours"], ratio["peer"])],
    }


def versus_table(results: list[dict], meta: dict) -> str:
    """The budget of issue 17 for Node first executions on Redis: idempo's ratio to bare at
    least the peer's, both on the peer's own app and measured in the same rounds."""
    lines = [
        (
            f"Run on {meta['machine']}, {meta['date']}: `{meta['command']}` (`benches/http/bench.py --versus`: "
            f"{meta['rounds']} rounds, each the bare app, then idempo and the peer in alternating order)."
        ),
        "",
        (
            "| app | store | bare req/s | idempo req/s | peer req/s | idempo CPU | peer CPU "
            "| idempo ÷ bare | peer ÷ bare | idempo ÷ peer, by round | met |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in results:
        rounds = " · ".join(f"{x:.2f}" for x in v["ours_over_peer"])
        met = "yes" if v["ours_ratio"] >= v["peer_ratio"] else "**no**"
        lines.append(
            f"| {v['app']} | {v['store']} | {v['bare_rps']:,.0f} | {v['ours_rps']:,.0f} | {v['peer_rps']:,.0f} "
            f"| {v['ours_cpu_us']:.0f} µs | {v['peer_cpu_us']:.0f} µs | {v['ours_ratio']:.3f} | {v['peer_ratio']:.3f} "
            f"| {rounds} | {met} |".replace(",", " ")
        )
    return "\n".join(lines) + "\n"


def comparable(peers: list[dict], r: dict) -> list[dict]:
    """The peers to hold row `r` against: those on its own framework where there are any
    (the Node peer runs on Express and on Fastify), else every peer of its language."""
    same = [p for p in peers if p["compare_with"] == r["app"]]
    return same or [p for p in peers if p["language"] == r["language"]]


def budgets(rows: list[dict]) -> list[tuple[str, str, bool]]:
    """(budget, measured, met) for each budget of issue 7 that this run's rows cover."""
    out = []
    cell = {(r["app"], r["store"], r["workload"]): r for r in rows}
    ours = [r for r in rows if not r["peer"]]
    for r in ours:
        if r["workload"] == "passthrough":
            out.append((f"{r['app']}/{r['store']}: passthrough ≥ 0.95 × bare", f"{r['ratio']:.3f}", r["ratio"] >= 0.95))
        if r["workload"] == "replay":
            out.append((f"{r['app']}/{r['store']}: replay ≥ bare", f"{r['ratio']:.3f}", r["ratio"] >= 1.0))
        if r["store"] != "memory" and r["workload"] in ("first", "replay"):
            want = 2 if r["workload"] == "first" else 1
            got = r["round_trips"]
            out.append(
                (
                    f"{r['app']}/{r['store']}: {r['workload']} = {want} round trip{'s' if want > 1 else ''}",
                    "n/a" if got is None else f"{got:.3f}",
                    got == want,
                )
            )
    # Issue 17: PostgreSQL's app CPU per replay within twice Redis's, for every integration.
    for r in ours:
        redis = cell.get((r["app"], "redis", "replay"))
        if r["store"] == "postgres" and r["workload"] == "replay" and redis:
            out.append(
                (
                    f"{r['app']}: CPU per replay, postgres ≤ 2 × redis",
                    f"{r['cpu_us']:.0f} vs {redis['cpu_us']:.0f} µs = {r['cpu_us'] / redis['cpu_us']:.2f}×",
                    r["cpu_us"] <= 2 * redis["cpu_us"],
                )
            )
    # Issue 17, Node: a memory replay within 0.9 of bare. (A first execution on Redis against
    # the Node peer's is held in the same rounds on the peer's own app: `versus`.)
    for r in ours:
        if r["language"] == "node" and r["store"] == "memory" and r["workload"] == "replay":
            out.append((f"{r['app']}/memory: replay ≥ 0.9 × bare", f"{r['ratio']:.3f}", r["ratio"] >= 0.9))
    peers = [r for r in rows if r["peer"] and r["workload"] == "first"]
    for r in ours:
        if r["store"] != "redis" or r["workload"] != "first":
            continue
        for peer in comparable(peers, r):
            # Each peer on its Redis store when it has one, else its only store.
            if peer["store"] != "redis" and (peer["app"], "redis", "first") in cell:
                continue
            ratio = r["rps"] / peer["rps"]
            out.append(
                (
                    f"{r['app']}/redis first ≥ 2 × {peer['app']}/{peer['store']} first",
                    f"{r['rps']:.0f} vs {peer['rps']:.0f} req/s = {ratio:.2f}×",
                    ratio >= 2,
                )
            )
    return out


def fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def table(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Machine: {meta['machine']}. Date: {meta['date']}. Command: `{meta['command']}`.",
        (
            f"Each cell: the median of {meta['rounds']} alternating rounds of a fixed number of `POST /echo`"
            f" requests ({CONCURRENCY} connections, keep-alive, one load thread), after a warm-up;"
            " *ratio* is to the bare app measured in the same rounds; *server CPU* is the app's"
            " processes' CPU time (user + system) per request; *round trips* are store commands"
            " (Redis) or statements (PostgreSQL) per request, counted on the server."
        ),

        "",
        "| app | store | workload | requests | req/s | p50 | p99 | server CPU | errors | ratio to bare | round trips |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r['app']} (peer)" if r["peer"] else r["app"]
        trips = "–" if r["round_trips"] is None else f"{r['round_trips']:.2f}"
        if r["workload"] == "bare":
            trips = "–"
        lines.append(
            f"| {name} | {r['store']} | {r['workload']} | {r['requests']} | {r['rps']:,.0f} | {fmt_us(r['p50_us'])} |"
            f" {fmt_us(r['p99_us'])} | {r['cpu_us']:.0f} µs | {r['errors']} | {r['ratio']:.3f} | {trips} |".replace(",", " ")
        )
    lines += ["", "| budget | measured | met |", "|---|---|---|"]
    for name, measured, met in budgets(rows):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} vCPU {cpu}, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def write(path: Path, text: str, marker: str = "bench") -> None:
    """Put `text` between the `<!-- marker:begin -->` and `<!-- marker:end -->` lines."""
    doc = path.read_text()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in doc or end not in doc:
        raise BenchError(f"{path} has no {begin} … {end} markers")
    head, _, rest = doc.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")


def spread_table(rows: list[dict], meta: dict) -> str:
    """Passthrough against bare, cell by cell: the median ratio and its range over the
    rounds (each round's passthrough run against the bare run of the same round). A cell
    whose best round stays below 0.97 is slower than noise can explain."""
    lines = [
        (
            f"Run on {meta['machine']}, {meta['date']}: `python3 benches/http/bench.py --spread benches/README.md "
            f"--rounds {meta['rounds']}` (release builds, under scripts/with-services.sh)."
        ),
        "",
        "| app | store | passthrough ÷ bare, median | lowest round | highest round | reaches 0.97 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["workload"] != "passthrough":
            continue
        ratios = row["round_ratios"]
        reaches = "yes" if max(ratios) >= 0.97 else "**no**"
        lines.append(
            f"| {row['app']} | {row['store']} | {row['ratio']:.3f} | {min(ratios):.3f} | {max(ratios):.3f} | {reaches} |"
        )
    return "\n".join(lines) + "\n"


def run_meta(args: argparse.Namespace) -> dict:
    """What a table says of its run: machine, date, command, rounds."""
    return {
        "machine": machine(),
        "date": date.today().isoformat(),
        "command": os.environ.get("BENCH_COMMAND", "make bench"),
        "rounds": args.rounds,
    }


def run_versus(apps: list[App], args: argparse.Namespace, urls: dict[str, str]) -> int:
    by_name = {a.name: a for a in apps}
    results = []
    try:
        for ours in [a for a in apps if a.same_app_as and a.same_app_as in by_name]:
            print(f"== {ours.name} against {ours.same_app_as}", flush=True)
            results.append(versus(ours, by_name[ours.same_app_as], "redis", args.rounds, args.scale, urls))
    except (BenchError, OSError) as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    meta = run_meta(args)
    text = versus_table(results, meta)
    print(text)
    write(args.versus, text, marker="versus")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", help="comma-separated app names (fixtures and peers); default: all")
    parser.add_argument("--stores", default="memory,redis,postgres")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "3")))
    parser.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    parser.add_argument("--write", type=Path, help="put the table into this file between the markers")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--spread",
        type=Path,
        help="measure only bare and passthrough, and put each cell's ratio with its spread over the "
        "rounds into this file between the `<!-- spread:begin -->` and `<!-- spread:end -->` markers",
    )
    parser.add_argument(
        "--versus",
        type=Path,
        help="measure only idempo against each Node peer on the peer's own app (first executions on "
        "Redis, in the same rounds), into this file between the `<!-- versus:begin -->` and "
        "`<!-- versus:end -->` markers",
    )
    args = parser.parse_args()
    stores = args.stores.split(",")
    urls = {"memory": "memory"}
    for store, var in (("redis", "REDIS_URL"), ("postgres", "DATABASE_URL")):
        if store in stores:
            if not os.environ.get(var):
                print(f"bench: {var} is not set; run under scripts/with-services.sh (make bench)", file=sys.stderr)
                return 2
            urls[store] = os.environ[var]
    apps = load_apps(set(args.apps.split(",")) if args.apps else None, not args.no_peers)
    if args.versus:
        return run_versus(apps, args, urls)
    # idempo on a peer's own app is measured only against that peer, in --versus.
    apps = [a for a in apps if not a.same_app_as]
    rows: list[dict] = []
    started = time.monotonic()
    try:
        for app in apps:
            print(f"== {app.name}", flush=True)
            workloads = ["bare", "passthrough"] if args.spread else WORKLOADS
            rows += run_app(app, stores, args.rounds, args.scale, urls, workloads)
    except (BenchError, OSError) as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    meta = run_meta(args)
    if args.spread:
        text = spread_table(rows, meta)
        print(text)
        write(args.spread, text, marker="spread")
        return 0
    text = table(rows, meta)
    print(text)
    print(f"bench: {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if args.write:
        write(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
