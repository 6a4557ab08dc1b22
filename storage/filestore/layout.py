"""The store's directory: file names, the `store.meta` format version, segment generations, and
how a failed write is reported.

    store.meta        checked JSON (CRC envelope, `durable.write_checked`): format version, name
    00000001.seg      segment files, numbered in order; the highest is the active one
    00000001.idx      persisted index of a sealed segment (checked envelope, `storage.segindex`)
    truncate.intent   only between committing a truncation and finishing it (`storage.truncation`)
"""

from __future__ import annotations

import errno
import os

from storage.store import StoreError, StoreFull

META = "store.meta"
FORMAT_VERSION = 1
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def seg_path(directory: str, seg_id: int) -> str:
    return os.path.join(directory, f"{seg_id:08d}.seg")


def idx_path(directory: str, seg_id: int) -> str:
    return os.path.join(directory, f"{seg_id:08d}.idx")


def new_generation() -> int:
    """A random, non-zero segment generation (zero means "header damaged")."""
    return (int.from_bytes(os.urandom(8), "little") >> 1) | 1


def full_error(e: OSError, what: str) -> StoreError:
    """A failed write as the store reports it: StoreFull when the disk (or quota) is full."""
    if e.errno in _FULL_ERRNOS:
        return StoreFull(f"{what}: {e}")
    return StoreError(f"{what}: {e}")
