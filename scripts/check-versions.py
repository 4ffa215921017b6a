"""One version number for the three ecosystems (`make lint`): the Cargo workspace's
version (every crate inherits it) is the one; the core as a workspace dependency, the
Python package and the npm package (and its lockfile) must say the same.

    python3 scripts/check-versions.py [ROOT]

Stdlib only and no `tomllib`, so it runs on any Python 3 the machine has: the entries it
reads are single lines of their sections.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def toml_entry(path: Path, section: str, key: str) -> str | None:
    """The raw value of `key = …` in `[section]` of a TOML file."""
    inside = False
    for line in path.read_text().splitlines():
        header = re.match(r"^\[(.+)\]\s*$", line)
        if header:
            inside = header.group(1) == section
            continue
        entry = re.match(rf"^{re.escape(key)}\s*=\s*(.+?)\s*$", line) if inside else None
        if entry:
            return entry.group(1)
    return None


def quoted(raw: str | None) -> str | None:
    match = re.fullmatch(r'"([^"]*)"', raw or "")
    return match.group(1) if match else None


def versions(root: Path) -> tuple[str | None, list[tuple[str, str | None]]]:
    """The workspace's version, and (where, version) for each place that must match it."""
    cargo = root / "Cargo.toml"
    workspace = quoted(toml_entry(cargo, "workspace.package", "version"))
    core_dep = re.search(r'version\s*=\s*"([^"]*)"', toml_entry(cargo, "workspace.dependencies", "idempo") or "")
    lock = json.loads((root / "node" / "package-lock.json").read_text())
    return workspace, [
        ("Cargo.toml [workspace.dependencies] idempo", core_dep.group(1) if core_dep else None),
        ("python/pyproject.toml [project] version", quoted(toml_entry(root / "python" / "pyproject.toml", "project", "version"))),
        ("node/package.json version", json.loads((root / "node" / "package.json").read_text()).get("version")),
        ("node/package-lock.json version", lock.get("version")),
        ('node/package-lock.json packages[""] version', lock.get("packages", {}).get("", {}).get("version")),
    ]


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    workspace, others = versions(root)
    if workspace is None:
        print("check-versions: Cargo.toml has no [workspace.package] version", file=sys.stderr)
        return 1
    wrong = [(where, v) for where, v in others if v != workspace]
    for where, v in wrong:
        print(f"check-versions: {where} is {v!r}, the workspace's is {workspace!r} (Cargo.toml [workspace.package])", file=sys.stderr)
    if not wrong:
        print(f"check-versions: {workspace} everywhere")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
