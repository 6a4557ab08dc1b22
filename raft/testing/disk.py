"""The simulated disk: one node's Raft directory in memory, implementing `raft.files.Files`.

`RaftLog` runs over `SimFiles` exactly as it runs over real files (`raft.files.DirFiles`). Each
file keeps what the running process sees and what was last fdatasynced; the directory keeps the
names as of the last directory sync. `crash` drops everything that was never synced (optionally
keeping a torn prefix of an unsynced append); `damage` and `lose_tail` break a down node's files
the ways a real disk can.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raft import records
from raft.files import Step
from raft.log import HARD_STATE_FILES, SNAPSHOT_FILE, VOUCH_FILE
from storage.durable import checked_bytes, unwrap_checked


class SimFile:
    __slots__ = ("data", "synced")

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.synced = bytes(data)  # the contents as of the last fdatasync


class SimHandle:
    """An append handle: bytes appended since the last `write_step` wait in `pending`."""

    __slots__ = ("file", "handed", "length", "name", "pending")

    def __init__(self, name: str, f: SimFile, length: int) -> None:
        self.name, self.file, self.length, self.handed = name, f, length, length
        self.pending = bytearray()


class SimWrite:
    """The write step of an append: write at its offset, then fdatasync. A crash may leave it
    written but not synced (`write_only`), so that the crash can tear it."""

    __slots__ = ("data", "file", "offset")

    def __init__(self, f: SimFile, offset: int, data: bytes) -> None:
        self.file, self.offset, self.data = f, offset, data

    def write_only(self) -> None:
        self.file.data[self.offset:self.offset + len(self.data)] = self.data

    def run(self) -> None:
        self.write_only()
        self.file.synced = bytes(self.file.data)


class _SimCall:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def run(self) -> None:
        self.fn()


class SimFiles:
    """One node's directory. `current` is what the running process sees; `durable` is the
    namespace as of the last directory sync. A crash keeps, for each durable name, the file's
    synced contents (plus, optionally, a torn prefix of an unsynced append)."""

    def __init__(self) -> None:
        self.current: dict[str, SimFile] = {}
        self.durable: dict[str, SimFile] = {}

    def names(self) -> list[str]:
        return sorted(self.current)

    def _get(self, name: str) -> SimFile:
        try:
            return self.current[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def read(self, name: str) -> bytes:
        return bytes(self._get(name).data)

    def read_checked(self, name: str) -> bytes:
        return unwrap_checked(self.read(name), name)

    def _put_durable(self, name: str, data: bytes) -> None:
        f = SimFile(data)
        self.current[name] = f
        self.durable[name] = f

    def write_checked(self, name: str, payload: bytes) -> None:
        self._put_durable(name, checked_bytes(payload))

    def write_new(self, name: str, data: bytes) -> None:
        self._put_durable(name, data)

    def cut(self, name: str, length: int) -> None:
        f = self._get(name)
        del f.data[length:]
        f.synced = bytes(f.data)

    def remove(self, names: list[str]) -> None:
        for n in names:
            self.current.pop(n, None)
        self.durable = dict(self.current)

    def create_append(self, name: str) -> SimHandle:
        f = SimFile()
        self.current[name] = f
        return SimHandle(name, f, 0)

    def open_append(self, name: str, length: int) -> SimHandle:
        return SimHandle(name, self._get(name), length)

    def append(self, handle: SimHandle, data: bytes) -> None:
        handle.pending += data
        handle.length += len(data)

    def length(self, handle: SimHandle) -> int:
        return handle.length

    def release(self, handle: SimHandle) -> None:
        pass

    def write_step(self, handle: SimHandle) -> SimWrite | None:
        if not handle.pending:
            return None
        step = SimWrite(handle.file, handle.handed, bytes(handle.pending))
        handle.handed = handle.length
        handle.pending = bytearray()
        return step

    def finish_write(self, handle: SimHandle, step: Step) -> None:
        pass

    def checked_step(self, name: str, payload: bytes) -> _SimCall:
        return _SimCall(lambda: self.write_checked(name, payload))

    def slot_step(self, name: str, offset: int, data: bytes) -> _SimCall:
        def run() -> None:
            f = self._get(name)
            f.data[offset:offset + len(data)] = data
            f.synced = bytes(f.data)
        return _SimCall(run)

    def unlink_step(self, name: str) -> _SimCall:
        def run() -> None:
            self.current.pop(name, None)
        return _SimCall(run)

    def dirsync_step(self) -> _SimCall:
        def run() -> None:
            self.durable = dict(self.current)
        return _SimCall(run)

    def crash(self, rng: random.Random, torn: bool) -> None:
        survivors: dict[str, SimFile] = {}
        for name, f in self.durable.items():
            content = f.synced
            extra = len(f.data) - len(content)
            if torn and extra > 0 and f.data.startswith(content) and rng.random() < 0.5:
                content = bytes(f.data[:len(content) + rng.randint(1, extra)])
            survivors[name] = SimFile(content)
        self.current = dict(survivors)
        self.durable = dict(survivors)

    # Damage (only ever applied to a node that is down) -----------------------------------------

    def lose_tail(self, keep: int) -> None:
        """Cut the log right before the first entry record above `keep` (and drop every later
        segment): the end of the log is gone, as if the disk lost it."""
        segs = sorted(n for n in self.current if n.startswith("seg-"))
        for k, name in enumerate(segs):
            f = self.current[name]
            found = records.scan(bytes(f.data))
            for rec, offset in zip(found.records, found.offsets, strict=True):
                if rec[0] == records.ENTRY and rec[1].index > keep:
                    del f.data[offset:]
                    f.synced = bytes(f.data)
                    for later in segs[k + 1:]:
                        del self.current[later]
                        self.durable.pop(later, None)
                    return

    def damage(self, rng: random.Random, kind: str | None = None) -> str:
        """Apply one kind of damage (random unless given); returns a description."""
        segs = sorted(n for n in self.current if n.startswith("seg-"))
        kinds = ["flip", "truncate", "zero", "tail", "tail", "snapshot", "hardstate", "vouch"]
        kind = kind or rng.choice(kinds)
        if kind == "tail" and segs:
            # Lose the end of the log: one of the newest segments cut short, later ones gone.
            at = rng.randrange(max(0, len(segs) - 3), len(segs))
            for name in segs[at + 1:]:
                del self.current[name]
                self.durable.pop(name, None)
            f = self.current[segs[at]]
            del f.data[rng.randrange(len(f.data) + 1):]
            f.synced = bytes(f.data)
            return f"tail {segs[at]}"
        if kind in ("flip", "truncate", "zero") and segs:
            name = rng.choice(segs)
            f = self.current[name]
            if len(f.data) < 2:
                return "nothing to damage"
            if kind == "flip":
                pos = rng.randrange(len(f.data))
                f.data[pos] ^= 1 << rng.randrange(8)
            elif kind == "truncate":
                del f.data[rng.randrange(len(f.data)):]
            else:
                a = rng.randrange(len(f.data))
                b = min(len(f.data), a + rng.randint(1, 256))
                f.data[a:b] = bytes(b - a)
            f.synced = bytes(f.data)
            return f"{kind} {name}"
        target = {"snapshot": SNAPSHOT_FILE, "vouch": VOUCH_FILE}.get(
            kind, rng.choice(HARD_STATE_FILES))
        damaged = self.current.get(target)
        if damaged is None or not damaged.data:
            return "nothing to damage"
        damaged.data[rng.randrange(len(damaged.data))] ^= 0xFF
        damaged.synced = bytes(damaged.data)
        return f"{kind} {target}"
