"""`make dist`'s packages (dist/, which `make test` makes first) as users install them: the
manylinux2014 abi3 wheel into a fresh virtualenv whose PATH has no cargo or rustc, the
sdist, built from its own Rust sources, into one that has cargo, each then serving a keyed
request through ASGI (uvicorn) and WSGI (Flask) and replaying it
(scripts/dist-python-smoke.sh, which the release workflow runs for every wheel); and the
crate `cargo package` made, with what crates.io and docs.rs read from it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

from idempo_tests.servers import ROOT

DIST = Path(os.environ.get("IDEMPO_DIST", ROOT / "dist"))
SMOKE = ROOT / "scripts" / "dist-python-smoke.sh"


def made(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"{DIST} holds {[f.name for f in found]} for {pattern}: run `make dist` first"
    return found[0]


def glibc_needed(binary: bytes) -> list[tuple[int, ...]]:
    """The glibc symbol versions a shared object asks for (the GLIBC_x.y names in it)."""
    names = set(re.findall(rb"GLIBC_([0-9]+(?:\.[0-9]+)+)\x00", binary))
    return sorted(tuple(int(p) for p in n.split(b".")) for n in names)


def smoke(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(SMOKE), str(DIST), *args], capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_wheel_is_manylinux2014_and_asks_for_no_glibc_newer_than_2_17() -> None:
    wheel = made("*.whl")
    assert wheel.name.endswith("-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        (module,) = [n for n in z.namelist() if n.endswith(".so")]
        binary = z.read(module)
    needed = glibc_needed(binary)
    assert needed and max(needed) <= (2, 17), needed
    assert b".symtab" not in binary, "the module is not stripped"


def test_the_wheel_installs_without_rust_and_serves_asgi_and_wsgi() -> None:
    out = smoke()
    assert '"runs": {"asgi": 1, "wsgi": 1}' in out, out


def test_the_sdist_carries_the_rust_sources_and_builds_on_its_own() -> None:
    sdist = made("idempo-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for needed in ("core/src/engine.rs", "bindings/python/src/lib.rs", "pyproject.toml", "Cargo.lock"):
        assert any(n.endswith(needed) for n in names), f"{needed} is not in the sdist"
    # A debug build: what is shown is that the sdist builds on its own, and the test run's
    # own debug builds already hold the dependencies compiled.
    out = smoke("--sdist", env={**os.environ, "MATURIN_PEP517_ARGS": "--profile dev"})
    assert '"runs": {"asgi": 1, "wsgi": 1}' in out, out


def test_the_crate_carries_what_crates_io_and_docs_rs_read() -> None:
    crate = made("idempo-*.crate")
    with tarfile.open(crate) as tar:
        root = crate.name.removesuffix(".crate")
        files = {m.name.removeprefix(root + "/"): m for m in tar.getmembers() if m.isfile()}

        def text(name: str) -> str:
            member = tar.extractfile(files[name])
            assert member is not None
            return io.TextIOWrapper(member, encoding="utf-8").read()

        assert text("README.md") == (ROOT / "core" / "README.md").read_text()
        assert text("LICENSE") == (ROOT / "LICENSE").read_text()
        manifest = text("Cargo.toml")
    assert "src/lib.rs" in files and "examples/demo.rs" in files
    for key in ("description", "license", "readme", "repository", "documentation", "keywords", "categories"):
        assert re.search(rf"^{key} = ", manifest, re.MULTILINE), f"Cargo.toml has no {key}"
    docs_rs = manifest.split("[package.metadata.docs.rs]", 1)
    assert len(docs_rs) == 2 and re.search(r"^all-features = true", docs_rs[1], re.MULTILINE), "docs.rs builds every feature"
