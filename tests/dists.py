"""Build what users install from this checkout, and install it somewhere else.

The checkout's files (tracked, and untracked but not ignored: what a commit would hold) go through
the real build backend the way `python -m build` does it: the sdist first, then the wheel from
the unpacked sdist, so a file missing from the sdist also fails the wheel. Used by the packaging
tests and by the rehearsal, whose pods run the wheel as the container image would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.procs import ROOT


class BuildError(RuntimeError):
    pass


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BuildError(f"{argv} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment without anything that would point Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def checkout_files() -> list[str] | None:
    """The files a commit of this tree would hold, or None outside a git work tree."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return [f for f in out.stdout.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


def build(base: Path, files: list[str]) -> tuple[Path, Path]:
    """Copy `files` of the checkout under `base`, build the sdist, then the wheel from it.
    Returns (sdist, wheel). Uses this venv's own build backend: no download, no isolation."""
    src = base / "src"
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), src / rel)
    out = base / "dist"
    out.mkdir()
    name = run([sys.executable, "-c",
                "import sys; from setuptools import build_meta as b; "
                "print(b.build_sdist(sys.argv[1]))", str(out)], cwd=src).strip().splitlines()[-1]
    sdist = out / name
    unpacked = base / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    (tree,) = list(unpacked.iterdir())
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(tree)], cwd=base)
    (wheel,) = list(out.glob("*.whl"))
    return sdist, wheel


def install(wheel: Path, venv: Path, python: str = sys.executable) -> Path:
    """A fresh venv made by `python` with the wheel (and its dependencies from the package
    index, or pip's cache) installed. Returns the venv's site-packages."""
    run([python, "-m", "venv", str(venv)], cwd=venv.parent)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(wheel)], cwd=venv.parent, env=clean_env())
    return Path(run([str(venv / "bin" / "python"), "-c",
                     "import broker, os; print(os.path.dirname(os.path.dirname(broker.__file__)))"],
                    cwd=venv, env=clean_env()).strip())
