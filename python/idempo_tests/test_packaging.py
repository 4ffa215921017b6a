"""`pip install ./python` in a fresh virtualenv builds the native module and gives a typed
package holding only `idempo` (no tests, no examples)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from idempo_tests.servers import ROOT


def test_pip_install_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT / "python")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = """
import importlib.util, pathlib, idempo, idempo.asgi, idempo.wsgi
pkg = pathlib.Path(idempo.__file__).parent
assert (pkg / "py.typed").exists() and (pkg / "_native.pyi").exists()
assert importlib.util.find_spec("idempo_tests") is None and importlib.util.find_spec("idempo_examples") is None
engine = idempo._native.Engine(idempo.MemoryStore(), required=True)
status, headers, body = engine.check_wsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/"})
assert status == 400 and b"missing-key" in body
print("ok", idempo.MemoryStore())
"""
    run = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout + run.stderr
    assert sys.version_info >= (3, 10)
