"""The one module that writes, fsyncs, renames and unlinks files for storage (and Raft's log).

Keeping every durability-relevant syscall here means one place decides what "durable" means and
one place can record it. Three tools:

* `AppendFile`: an append-only file whose new bytes stay in a user-space window until a sync job
  (or an overflow flush) hands them to the kernel, so storing a message costs no syscall. It tracks
  three lengths: `length` (appended), `handed` (given to the kernel or to a job) and `durable`
  (covered by a completed fdatasync). The window always holds at least `[durable, length)`, so a
  failed sync can be retried from memory (after a failed fsync the page cache cannot be trusted).
  A file synced on its own (a state log, a Raft log segment) commits with `begin_sync`, then
  `AppendSync.run` (one pwrite, one fdatasync; any thread), then `finish_sync`.
* Namespace operations (`create`, `rename`, `unlink`, `fsync_dir`, `write_atomic`) and checksummed
  metadata files (`write_checked`, `read_checked`, which refuse a damaged file with `DamagedFile`).
* A test-mode **durability journal**. When `BROKER_DURABILITY_JOURNAL=<path>` is set (read at
  import; `set_journal()` changes it), every completed fdatasync appends the file's inode, path and
  the length now durable; every create, rename and unlink is recorded with the inodes involved, and
  every directory fsync is recorded as the point where those namespace changes became durable. In
  journal mode an unlinked (or renamed-over) file is kept alive as a hard link in
  `<journal>.graveyard/` so a power-loss simulation can bring it back. `simulate_power_loss()`
  (in `storage.powerloss`) replays the journal over a directory after the process was SIGKILLed.

Journal lines are JSON objects, one per line, appended with O_APPEND by a single write each.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import threading
import zlib
from typing import Any

from storage.store import StoreError, SyncJob

JOURNAL_ENV = "BROKER_DURABILITY_JOURNAL"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class DamagedFile(StoreError):
    """A checksummed file failed verification; its contents are not trusted or returned."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path} is damaged: {detail}")
        self.path = path


# ---------------------------------------------------------------------------------------------
# The test-mode journal


class _Journal:
    """Appends one JSON line per durability event when a journal path is configured."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: str | None = None
        self._fd: int | None = None
        self._pid = 0

    @property
    def path(self) -> str | None:
        return self._path

    def configure(self, path: str | None) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
            self._path = os.path.abspath(path) if path else None
            self._fd = None

    def graveyard(self) -> str | None:
        return None if self._path is None else self._path + ".graveyard"

    def record(self, op: str, **fields: Any) -> None:
        if self._path is None:
            return
        line = (json.dumps({"op": op, **fields}, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC
                self._fd = os.open(self._path, flags, 0o644)
                self._pid = os.getpid()
            os.write(self._fd, line)


_journal = _Journal()
_journal.configure(os.environ.get(JOURNAL_ENV) or None)


def set_journal(path: str | None) -> None:
    """Start (or with None stop) recording durability events to `path`."""
    _journal.configure(path)


def journal_path() -> str | None:
    return _journal.path


def _ino(fd: int) -> int:
    return os.fstat(fd).st_ino


# ---------------------------------------------------------------------------------------------
# Plain file and namespace operations


def makedirs(path: str) -> None:
    """Create `path` and missing parents, fsyncing each parent so the directories are durable."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue
        fsync_dir(os.path.dirname(directory), record=False)


def create(path: str) -> int:
    """Create a new file (it must not exist) and return a read-write fd. Not durable until the
    directory is fsynced (`fsync_dir`)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
    if _journal.path is not None:
        _journal.record("create", ino=_ino(fd), path=os.path.abspath(path))
    return fd


def open_rw(path: str) -> int:
    return os.open(path, os.O_RDWR | _O_CLOEXEC)


def open_ro(path: str) -> int:
    return os.open(path, os.O_RDONLY | _O_CLOEXEC)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (os.pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - the kernel reports errors by raising
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        offset += n


def fdatasync(fd: int, path: str, durable_length: int | None) -> None:
    """fdatasync `fd`; then journal that `path` is durable up to `durable_length` (None: a sync
    that does not change what length is durable, e.g. after patching bytes in place)."""
    os.fdatasync(fd)
    if durable_length is not None and _journal.path is not None:
        _journal.record("sync", ino=_ino(fd), len=durable_length, path=os.path.abspath(path))


def fsync_dir(path: str, record: bool = True) -> None:
    """fsync a directory: creates, renames and unlinks in it before this call are now durable."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if record:
        _journal.record("dirsync", path=os.path.abspath(path))


def truncate(fd: int, length: int) -> None:
    """Cut a file. Durable with the next fdatasync of the file."""
    os.ftruncate(fd, length)


def _bury(path: str) -> str | None:
    """Journal mode: keep the inode at `path` alive in the graveyard; returns where, or None."""
    graveyard = _journal.graveyard()
    if graveyard is None:
        return None
    os.makedirs(graveyard, exist_ok=True)
    ghost = os.path.join(graveyard, f"{os.stat(path).st_ino}-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.link(path, ghost)
    except OSError:  # another filesystem, or no hard links: the inode cannot be kept
        return None
    return ghost


def unlink(path: str) -> None:
    """Remove a file. Durable after the next `fsync_dir` of its directory."""
    path = os.path.abspath(path)
    if _journal.path is None:
        os.unlink(path)
        return
    ino = os.stat(path).st_ino
    ghost = _bury(path)
    os.unlink(path)
    _journal.record("unlink", ino=ino, path=path, ghost=ghost)


def rmdir(path: str) -> None:
    """Remove an empty directory, durably (its parent is fsynced)."""
    path = os.path.abspath(path)
    os.rmdir(path)
    fsync_dir(os.path.dirname(path))


def rename(src: str, dst: str) -> None:
    """Atomically replace `dst` by `src`. Durable after the next `fsync_dir`."""
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    if _journal.path is None:
        os.rename(src, dst)
        return
    ino = os.stat(src).st_ino
    old = os.stat(dst).st_ino if os.path.exists(dst) else None
    ghost = _bury(dst) if old is not None else None
    os.rename(src, dst)
    _journal.record("rename", ino=ino, src=src, dst=dst, old=old, ghost=ghost)


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data` so that after a crash it holds the old or the new bytes, never a
    mix: write a temporary file, fdatasync it, rename it over `path`, fsync the directory."""
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        unlink(tmp)
    fd = create(tmp)
    try:
        pwrite_all(fd, data, 0)
        fdatasync(fd, tmp, len(data))
    finally:
        os.close(fd)
    rename(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


# Checked files: b"NBCK" | version u32 | payload length u64 | crc32(payload) u32 | payload
_CHECKED = struct.Struct("<4sIQI")
_CHECKED_MAGIC = b"NBCK"


def checked_bytes(payload: bytes) -> bytes:
    """`payload` wrapped in the checked-file envelope (pure; see `write_checked`)."""
    return _CHECKED.pack(_CHECKED_MAGIC, 1, len(payload), zlib.crc32(payload)) + payload


def unwrap_checked(raw: bytes, path: str = "<bytes>") -> bytes:
    """The payload of a checked envelope; DamagedFile if anything does not add up."""
    if len(raw) < _CHECKED.size:
        raise DamagedFile(path, f"{len(raw)} bytes is shorter than the header")
    magic, version, length, crc = _CHECKED.unpack_from(raw)
    if magic != _CHECKED_MAGIC or version != 1:
        raise DamagedFile(path, "bad magic or version")
    payload = raw[_CHECKED.size:]
    if len(payload) != length:
        raise DamagedFile(path, f"length {len(payload)} != recorded {length}")
    if zlib.crc32(payload) != crc:
        raise DamagedFile(path, "checksum mismatch")
    return payload


def write_checked(path: str, payload: bytes) -> None:
    """Atomically write a metadata file carrying a CRC32 of its payload."""
    write_atomic(path, checked_bytes(payload))


def read_checked(path: str) -> bytes:
    """The payload of a file written by `write_checked`. Raises DamagedFile when it was damaged
    (never returns garbage) and FileNotFoundError when it does not exist."""
    with open(path, "rb") as f:
        raw = f.read()
    return unwrap_checked(raw, path)


# ---------------------------------------------------------------------------------------------
# The append-only file


class AppendFile:
    """An append-only file with a user-space tail window (see the module docstring).

    Only the loop thread touches an AppendFile. A sync job receives plain bytes and the fd, so the
    worker thread never reads this object's state. `inflight` counts jobs holding the fd: it must
    not be closed before they finish.
    """

    __slots__ = ("durable", "fd", "handed", "inflight", "length", "path", "win", "win_start")

    def __init__(self, path: str, fd: int, length: int) -> None:
        self.path = path
        self.fd = fd
        self.length = length  # everything appended
        self.handed = length  # given to the kernel (or to a sync job that will write it)
        self.durable = length  # covered by a completed fdatasync
        self.win = bytearray()  # file bytes [win_start, length)
        self.win_start = length
        self.inflight = 0

    @classmethod
    def create(cls, path: str) -> AppendFile:
        return cls(path, create(path), 0)

    @classmethod
    def open(cls, path: str, length: int) -> AppendFile:
        """Open an existing file whose first `length` bytes are on disk (and treated as durable:
        recovery has just read and, where needed, synced them)."""
        return cls(path, open_rw(path), length)

    def append(self, data: bytes) -> int:
        offset = self.length
        self.win += data
        self.length = offset + len(data)
        return offset

    def unwritten(self) -> int:
        return self.length - self.handed

    def read(self, offset: int, n: int) -> bytes:
        """Bytes [offset, offset+n) clipped to the file, from the window or the kernel."""
        end = min(offset + n, self.length)
        if offset >= self.win_start:
            a = offset - self.win_start
            return bytes(self.win[a:a + (end - offset)])
        if end <= self.win_start:
            return os.pread(self.fd, end - offset, offset)
        head = os.pread(self.fd, self.win_start - offset, offset)
        return head + bytes(self.win[: end - self.win_start])

    def patch(self, offset: int, data: bytes) -> bool:
        """Overwrite bytes in place. Returns True when the kernel copy must be rewritten too (the
        caller queues that for the next sync job)."""
        end = offset + len(data)
        if end > self.win_start:
            a = max(offset, self.win_start)
            self.win[a - self.win_start:end - self.win_start] = data[a - offset:]
        return offset < self.handed

    def take(self) -> tuple[int, bytes]:
        """Hand the unwritten bytes to a sync job: (file offset, bytes)."""
        offset = self.handed
        data = bytes(self.win[offset - self.win_start:])
        self.handed = self.length
        return offset, data

    def flush(self) -> None:
        """Write the unwritten bytes now, from the loop thread (no fsync). Raises OSError with
        nothing changed (partially written bytes are simply written again later)."""
        if self.handed == self.length:
            return
        # A copy, not a memoryview: a view kept alive by an exception's traceback would stop the
        # window from ever growing again (BufferError).
        pwrite_all(self.fd, bytes(self.win[self.handed - self.win_start:]), self.handed)
        self.handed = self.length

    def synced(self, length: int) -> None:
        """A job made [0, length) durable."""
        if length > self.durable:
            self.durable = length

    def failed(self) -> None:
        """A job failed: everything not durable must be written again (the kernel may have dropped
        the dirty pages, so even bytes it accepted are not trusted). Bytes already dropped from
        the window (beyond the retry budget, see `trim`) can only be trusted to the kernel."""
        self.handed = max(self.durable, self.win_start)

    def trim(self, keep: int, hold: int) -> None:
        """Let the window shrink to about `keep` bytes. Bytes not yet durable stay for a retry,
        up to `hold` bytes of them (a caller that never syncs must not grow memory forever).
        Trims in large steps so the memmove is amortised."""
        low = min(self.durable, self.length - keep)
        if not self.inflight:  # handed bytes are in the kernel only once no job holds them
            low = max(low, min(self.handed, self.length - hold))
        if low - self.win_start > max(keep // 2, 4096):
            del self.win[: low - self.win_start]
            self.win_start = low

    def cut(self, length: int) -> None:
        """Truncate the file (recovery: a torn tail) and make the cut durable now."""
        truncate(self.fd, length)
        fdatasync(self.fd, self.path, length)
        self.length = self.handed = self.durable = self.win_start = length
        self.win = bytearray()

    def begin_sync(self) -> AppendSync | None:
        """A job making everything appended durable (it writes what was not handed to the
        kernel yet, then fdatasyncs), or None when everything is. The job holds the fd
        (`inflight`) until `finish_sync`."""
        if self.durable == self.length:
            return None
        offset, data = self.take()
        self.inflight += 1
        return AppendSync(self.fd, self.path, offset, data)

    def finish_sync(self, job: AppendSync) -> None:
        """After `job.run()` returned: [0, job.end) is durable; the window lets go of it."""
        self.inflight -= 1
        self.synced(job.end)
        self.trim(keep=0, hold=1 << 20)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class AppendSync(SyncJob):
    """One AppendFile's sync job (`AppendFile.begin_sync`): pwrite the bytes handed to it at their
    offset, then fdatasync, so the file is durable up to `end`. Plain values only: `run()` may be
    called in any thread, and never touches the AppendFile."""

    __slots__ = ("data", "end", "fd", "offset", "path")

    def __init__(self, fd: int, path: str, offset: int, data: bytes) -> None:
        self.fd, self.path, self.offset, self.data = fd, path, offset, data
        self.end = offset + len(data)

    def run(self) -> None:
        if self.data:
            pwrite_all(self.fd, self.data, self.offset)
        fdatasync(self.fd, self.path, self.end)


def simulate_power_loss(journal: str, root_dir: str, **options: Any) -> Any:
    """Make `root_dir` look as after a power cut (see `storage.powerloss.simulate_power_loss`)."""
    from storage.powerloss import simulate_power_loss as simulate

    return simulate(journal, root_dir, **options)
