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


def main(out: Path, readme: Path) -> int:
    pattern = r"test tower/(\w+) \.\.\. bench:\s+([\d,.]+) ns/iter"
    ns = {m.group(1): float(m.group(2).replace(",", "")) for m in re.finditer(pattern, (out / "criterion").read_text())}
    allocs_text = (out / "allocations").read_text()
    allocs = {}
    for variant, label in ALLOC_ROWS.items():
        m = re.search(re.escape(label) + r"\s+([\d.]+)", allocs_text)
        allocs[variant] = float(m.group(1)) if m else float("nan")
    ir = {}
    for variant in ALLOC_ROWS:
        small, large = (int((out / f"ir-{variant}-{n}").read_text().split()[0]) for n in (200, 1200))
        ir[variant] = (large - small) / 1000
    lines = [
        (
            f"Run on {machine()}, {time.strftime('%Y-%m-%d')}: `make bench-tower` (criterion median; allocations by a "
            "counting allocator; instructions per request under callgrind, the difference of 1 200 and 200 requests, "
            "where valgrind hides SHA-NI so sha2 runs its portable code)."
        ),
        "",
        "| request | time | allocations | instructions | over bare (instructions, allocations) |",
        "|---|---|---|---|---|",
    ]
    for variant in ALLOC_ROWS:
        over = f"+{ir[variant] - ir['bare']:,.0f}, +{allocs[variant] - allocs['bare']:.1f}" if variant != "bare" else "–"
        lines.append(f"| {variant} | {ns.get(variant, float('nan')) / 1000:.2f} µs | {allocs[variant]:.1f} | {ir[variant]:,.0f} | {over} |")
    budgets = [
        ("passthrough ≤ no-op layer + 300 instructions", ir["passthrough"] - ir["noop"], 300),
        ("passthrough: no allocation of its own", allocs["passthrough"] - allocs["noop"], 0),
        ("replay ≤ bare + 8 000 instructions", ir["replay"] - ir["bare"], 8000),
        ("replay ≤ bare + 6 allocations", allocs["replay"] - allocs["bare"], 6),
        ("first execution ≤ bare + 15 000 instructions", ir["first"] - ir["bare"], 15000),
        ("first execution ≤ bare + 20 allocations", allocs["first"] - allocs["bare"], 20),
    ]
    lines += ["", "| budget | measured | met |", "|---|---|---|"]
    for what, got, limit in budgets:
        lines.append(f"| {what} | {got:+,.1f} | {'yes' if got <= limit else '**no**'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write(readme, text, marker="tower")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
