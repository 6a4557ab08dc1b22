"""Small real filesystems for tests of a full disk: a tmpfs of a given size mounted on a folder.

Root only; `small_volume` skips the calling test (with the reason) where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def small_volume(path: str, size: str) -> Iterator[str]:
    """`path` as a tmpfs of `size` (such as "3m") for the duration; unmounted afterwards."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a real full disk)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)
