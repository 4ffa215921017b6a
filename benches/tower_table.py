"""The table of scripts/bench-tower.sh (issue 17): criterion medians, allocations and
callgrind instructions per request through the tower layer, against the bare app and a
no-op layer, with the budgets; written into benches/README.md between the
`<!-- tower:begin -->` and `<!-- tower:end -->` markers. Stdlib only."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "http"))
from bench import machine, write

ALLOC_ROWS = {
    "bare": "bare app, no layer",
    "noop": "a no-op layer",
    "passthrough": "no key: passes through",
    "replay": "keyed, replay",
    "first": "keyed, first execution",
}


def shani_costs(disassembly: str) -> tuple[int, int]:
    """Instructions of the SHA-NI block function's loop (one block per turn), and of the
    rest of one call (before the loop to the first return after it)."""
    insns = []
    for line in disassembly.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)(?:\s+([0-9a-f]+))?", line)
        if m:
            insns.append((int(m.group(1), 16), m.group(2), int(m.group(3), 16) if m.group(3) else None))
    if not insns:
        return 0, 0
    addrs = [a for a, _, _ in insns]
    # The loop: the widest backward conditional jump inside the function.
    best = None
    for i, (addr, op, target) in enumerate(insns):
        if op.startswith("j") and op != "jmp" and target is not None and addrs[0] <= target < addr:
            start = addrs.index(target) if target in addrs else None
            if start is not None and (best is None or i - start > best[1] - best[0]):
                best = (start, i)
    if best is None:
        return 0, 0
    start, end = best
    ret = next((i for i in range(end, len(insns)) if insns[i][1].startswith("ret")), len(insns) - 1)
    return end - start + 1, start + (ret - end)


def main(out: Path, readme: Path) -> int:
    pattern = r"test tower/(\w+) \.\.\. bench:\s+([\d,.]+) ns/iter"
    ns = {m.group(1): float(m.group(2).replace(",", "")) for m in re.finditer(pattern, (out / "criterion").read_text())}
    allocs_text = (out / "allocations").read_text()
    allocs = {}
    for variant, label in ALLOC_ROWS.items():
        m = re.search(re.escape(label) + r"\s+([\d.]+)", allocs_text)
        allocs[variant] = float(m.group(1)) if m else float("nan")
    counts = {}
    for variant in [*ALLOC_ROWS, "sha"]:
        (small_total, small_sha, small_calls), (large_total, large_sha, large_calls) = (
            [int(x) for x in (out / f"ir-{variant}-{n}").read_text().split()] for n in (200, 1200)
        )
        counts[variant] = ((large_total - small_total) / 1000, (large_sha - small_sha) / 1000, (large_calls - small_calls) / 1000)
    # The calibration hashed 1 000 blocks more in one call: what one block costs, portable.
    per_block = counts["sha"][1]
    loop, overhead = shani_costs((out / "shani.s").read_text())
    ir, native, blocks = {}, {}, {}
    for variant in ALLOC_ROWS:
        total, sha, calls = counts[variant]
        ir[variant] = total
        blocks[variant] = sha / per_block if per_block else 0.0
        native[variant] = total - sha + blocks[variant] * loop + calls * overhead
    shani = "yes" in (out / "sha-ni-cpu").read_text() and loop > 0
    lines = [
        (
            f"Run on {machine()}, {time.strftime('%Y-%m-%d')}: `make bench-tower` (criterion median; allocations by a "
            "counting allocator; instructions per request under callgrind, the difference of 1 200 and 200 requests)."
        ),
        "",
        (
            "sha2 0.10 chooses its SHA-256 code at run time (a CPUID check): this machine has SHA-NI "
            f"({'listed' if shani else '**not** listed'} in /proc/cpuinfo) and takes `sha2::sha256::x86::digest_blocks`, "
            f"{loop} instructions per 64-byte block and {overhead} per call, counted in its disassembly. Valgrind hides "
            f"SHA-NI, so under callgrind the portable code runs instead ({per_block:,.0f} instructions per block): the "
            "*SHA-NI* column takes callgrind's count of the SHA-256 part out and puts the native cost of the same blocks "
            "and calls back in. Budgets on instructions are read there."
        ),
        "",
        "| request | time | allocations | instructions (portable SHA) | SHA-256 blocks | instructions (SHA-NI) | over bare (SHA-NI instructions, allocations) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in ALLOC_ROWS:
        over = (
            f"+{native[variant] - native['bare']:,.0f}, +{allocs[variant] - allocs['bare']:.1f}" if variant != "bare" else "–"
        )
        lines.append(
            f"| {variant} | {ns.get(variant, float('nan')) / 1000:.2f} µs | {allocs[variant]:.1f} | {ir[variant]:,.0f} "
            f"| {blocks[variant]:.1f} | {native[variant]:,.0f} | {over} |"
        )
    budgets = [
        ("passthrough ≤ no-op layer + 300 instructions", native["passthrough"] - native["noop"], 300),
        ("passthrough: no allocation of its own", allocs["passthrough"] - allocs["noop"], 0),
        ("replay ≤ bare + 8 000 instructions (SHA-NI)", native["replay"] - native["bare"], 8000),
        ("replay ≤ bare + 6 allocations", allocs["replay"] - allocs["bare"], 6),
        ("first execution ≤ bare + 15 000 instructions (SHA-NI)", native["first"] - native["bare"], 15000),
        ("first execution ≤ bare + 20 allocations", allocs["first"] - allocs["bare"], 20),
        ("sha2 takes its SHA-NI code on this machine", 0 if shani else 1, 0),
    ]
    lines += ["", "| budget | measured | met |", "|---|---|---|"]
    for what, got, limit in budgets:
        shown = ("yes" if got == 0 else "no") if what.startswith("sha2") else f"{got:+,.1f}"
        lines.append(f"| {what} | {shown} | {'yes' if got <= limit else '**no**'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write(readme, text, marker="tower")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
