"""The package is typed: `mypy --strict` passes on the examples (and on the package), and
the `.pyi` stubs agree with the compiled module (`mypy.stubtest`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=PYTHON_DIR, capture_output=True, text=True, timeout=300)


def test_mypy_strict_passes_on_the_examples_and_the_package() -> None:
    r = run("mypy", "--strict", "--no-incremental", "idempo_examples", "idempo")
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubtest_agrees_with_the_native_module() -> None:
    r = run("mypy.stubtest", "idempo", "--ignore-missing-stub")
    assert r.returncode == 0, r.stdout + r.stderr
