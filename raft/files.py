"""The directory a Raft log lives in, behind a small interface with two implementations:
`DirFiles` here (real files, every durability syscall through `storage.durable`) and the
simulator's in-memory disk (`raft.testing.disk.SimFiles`), which drops what was never synced
on a crash. `raft.log.RaftLog` is written once against this interface, so its recovery and
ordering rules run under simulated crashes exactly as they run on disk.

Writes are planned on the loop thread and executed later as `Step`s (in a worker thread for real
files): a step holds only plain values (fds, offsets, bytes, names), never log state.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from storage import durable


class Step(Protocol):
    def run(self) -> None: ...


class Files(Protocol):
    """A directory of files, as RaftLog needs it."""

    # Reading (recovery)
    def names(self) -> list[str]: ...
    def read(self, name: str) -> bytes: ...
    def read_checked(self, name: str) -> bytes: ...  # DamagedFile, FileNotFoundError

    # Immediate, durable on return (recovery and first creation only)
    def write_checked(self, name: str, payload: bytes) -> None: ...
    def write_new(self, name: str, data: bytes) -> None: ...  # atomic replace, durable
    def cut(self, name: str, length: int) -> None: ...
    def remove(self, names: list[str]) -> None: ...  # unlink + dirsync

    # Append handles (loop thread)
    def create_append(self, name: str) -> Any: ...  # durable after a dirsync step
    def open_append(self, name: str, length: int) -> Any: ...
    def append(self, handle: Any, data: bytes) -> None: ...
    def length(self, handle: Any) -> int: ...
    def release(self, handle: Any) -> None: ...  # no step holds it any more

    # Steps (built on the loop thread, run later)
    def write_step(self, handle: Any) -> Step | None: ...  # what was appended: write + sync
    def finish_write(self, handle: Any, step: Step) -> None: ...  # loop thread, after run
    def checked_step(self, name: str, payload: bytes) -> Step: ...
    def slot_step(self, name: str, offset: int, data: bytes) -> Step: ...  # overwrite + sync
    def unlink_step(self, name: str) -> Step: ...
    def dirsync_step(self) -> Step: ...


class _Checked:
    __slots__ = ("path", "payload")

    def __init__(self, path: str, payload: bytes) -> None:
        self.path, self.payload = path, payload

    def run(self) -> None:
        durable.write_checked(self.path, self.payload)


class _Slot:
    """Overwrite a few bytes in place and fdatasync (the vouch file's slots)."""

    __slots__ = ("data", "fd", "offset", "path")

    def __init__(self, fd: int, path: str, offset: int, data: bytes) -> None:
        self.fd, self.path, self.offset, self.data = fd, path, offset, data

    def run(self) -> None:
        durable.pwrite_all(self.fd, self.data, self.offset)
        durable.fdatasync(self.fd, self.path, None)


class _Unlink:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self) -> None:
        if os.path.exists(self.path):
            durable.unlink(self.path)


class _DirSync:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self) -> None:
        durable.fsync_dir(self.path)


class DirFiles:
    """Real files in `directory`; appends go through `storage.durable.AppendFile`."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        durable.makedirs(self.directory)
        self._slot_fds: dict[str, int] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.directory) if not n.endswith(".tmp"))

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def read_checked(self, name: str) -> bytes:
        return durable.read_checked(self.path(name))

    def write_checked(self, name: str, payload: bytes) -> None:
        durable.write_checked(self.path(name), payload)

    def write_new(self, name: str, data: bytes) -> None:
        """Replace (or create) `name` atomically and durably: a crash leaves old or new."""
        stale = self._slot_fds.pop(name, None)
        if stale is not None:
            os.close(stale)
        durable.write_atomic(self.path(name), data)

    def cut(self, name: str, length: int) -> None:
        handle = durable.AppendFile.open(self.path(name), os.path.getsize(self.path(name)))
        try:
            handle.cut(length)
        finally:
            handle.close()

    def remove(self, names: list[str]) -> None:
        for name in names:
            durable.unlink(self.path(name))
        if names:
            durable.fsync_dir(self.directory)

    def create_append(self, name: str) -> durable.AppendFile:
        return durable.AppendFile.create(self.path(name))

    def open_append(self, name: str, length: int) -> durable.AppendFile:
        return durable.AppendFile.open(self.path(name), length)

    def append(self, handle: durable.AppendFile, data: bytes) -> None:
        handle.append(data)

    def length(self, handle: durable.AppendFile) -> int:
        return handle.length

    def release(self, handle: durable.AppendFile) -> None:
        if not handle.inflight:
            handle.close()

    def write_step(self, handle: durable.AppendFile) -> durable.AppendSync | None:
        """pwrite the appended bytes at their offset, then fdatasync (`storage.durable`'s job)."""
        return handle.begin_sync()

    def finish_write(self, handle: durable.AppendFile, step: Step) -> None:
        assert isinstance(step, durable.AppendSync)
        handle.finish_sync(step)

    def checked_step(self, name: str, payload: bytes) -> _Checked:
        return _Checked(self.path(name), payload)

    def slot_step(self, name: str, offset: int, data: bytes) -> _Slot:
        fd = self._slot_fds.get(name)
        if fd is None:
            fd = self._slot_fds[name] = durable.open_rw(self.path(name))
        return _Slot(fd, self.path(name), offset, data)

    def unlink_step(self, name: str) -> _Unlink:
        return _Unlink(self.path(name))

    def dirsync_step(self) -> _DirSync:
        return _DirSync(self.directory)

    def close(self) -> None:
        for fd in self._slot_fds.values():
            os.close(fd)
        self._slot_fds.clear()
