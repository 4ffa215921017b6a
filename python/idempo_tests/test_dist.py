"""`make dist`'s Python packages (scripts/dist-python.sh) as a user installs them: the
manylinux2014 abi3 wheel into a fresh virtualenv whose PATH has no cargo or rustc, and
the sdist, built from its own Rust sources, into one that has cargo. Each then serves a
keyed request through ASGI (uvicorn) and WSGI (Flask) and replays it (dist_smoke.py)."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import venv
from pathlib import Path

import pytest

from idempo_tests.servers import ROOT

SMOKE = Path(__file__).with_name("dist_smoke.py")
SERVED = {
    "asgi": [201, None, "made 1", 201, "true", "made 1"],
    "wsgi": [201, None, "made 1", 201, "true", "made 1"],
    "runs": {"asgi": 1, "wsgi": 1},
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    made = subprocess.run([str(ROOT / "scripts" / "dist-python.sh"), str(out)], capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return out


def without_rust(path: str) -> str:
    dirs = path.split(os.pathsep)
    return os.pathsep.join(d for d in dirs if not any((Path(d) / tool).exists() for tool in ("cargo", "rustc")))


def fresh_venv(where: Path, path: str) -> tuple[Path, dict[str, str]]:
    venv.create(where, with_pip=True)
    env = {**os.environ, "PATH": os.pathsep.join([str(where / "bin"), path])}
    return where / "bin" / "python", env


def pip(python: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def serve(python: Path, env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run([str(python), str(SMOKE)], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == SERVED


def test_the_wheel_installs_without_rust_and_serves_asgi_and_wsgi(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.endswith("-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"), wheel.name
    python, env = fresh_venv(tmp_path / "env", without_rust(os.environ["PATH"]))
    assert subprocess.run(["bash", "-c", "command -v cargo || command -v rustc"], env=env).returncode != 0
    pip(python, env, "starlette", "uvicorn", "flask")
    pip(python, env, "--no-index", str(wheel))
    serve(python, env, tmp_path)


def test_the_sdist_carries_the_rust_sources_and_builds_on_its_own(dist: Path, tmp_path: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for needed in ("core/src/engine.rs", "bindings/python/src/lib.rs", "pyproject.toml", "Cargo.lock"):
        assert any(n.endswith(needed) for n in names), f"{needed} is not in the sdist"
    python, env = fresh_venv(tmp_path / "env", os.environ["PATH"])
    pip(python, env, "starlette", "uvicorn", "flask")
    # A debug build: what is shown is that the sdist builds on its own, and the test run's
    # own debug builds already hold the dependencies compiled.
    pip(python, {**env, "MATURIN_PEP517_ARGS": "--profile dev"}, str(sdist))
    serve(python, env, tmp_path)
