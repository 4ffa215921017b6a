"""`make lint` holds the three ecosystems to one version number (scripts/check-versions.py):
it passes on the repository, and names the file that disagrees when one does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from idempo_tests.servers import ROOT

FILES = ["Cargo.toml", "python/pyproject.toml", "node/package.json", "node/package-lock.json"]


def check(root: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "check-versions.py"
    return subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=60)


def copy(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_repository_has_one_version() -> None:
    done = check(ROOT)
    assert done.returncode == 0, done.stderr


def test_a_package_json_with_another_version_fails_naming_it(tmp_path: Path) -> None:
    root = copy(tmp_path)
    package = root / "node" / "package.json"
    data = json.loads(package.read_text())
    data["version"] = "9.9.9"
    package.write_text(json.dumps(data, indent=2))
    done = check(root)
    assert done.returncode == 1
    assert "node/package.json version is '9.9.9'" in done.stderr, done.stderr


def test_a_pyproject_with_another_version_fails_naming_it(tmp_path: Path) -> None:
    root = copy(tmp_path)
    pyproject = root / "python" / "pyproject.toml"
    text = pyproject.read_text()
    assert '\nversion = "' in text
    pyproject.write_text(text.replace('\nversion = "', '\nversion = "7.', 1))
    done = check(root)
    assert done.returncode == 1
    assert "python/pyproject.toml [project] version is '7." in done.stderr, done.stderr
