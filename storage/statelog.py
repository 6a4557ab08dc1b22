"""A small durable state log: checksummed records appended to a file, plus a checksummed snapshot.

For state machines whose changes are tiny and frequent (a consumer's deliveries and acks): each
change is one record; `compact(snapshot)` writes the whole state atomically and starts a fresh log
generation. Recovery reads the snapshot and replays the records of its generation, cutting a torn
tail. Durability follows the store contract (`begin_sync` / `SyncJob.run` / `finish_sync`).

Files: `<dir>/snapshot` (write_checked: generation + state bytes) and `<dir>/log.<generation>`
(records `u32 length | u32 crc32 | payload`).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib

from storage import durable
from storage.store import SyncJob

log = logging.getLogger("storage")

_HEAD = struct.Struct("<II")
_GEN = struct.Struct("<Q")


class StateLog:
    def __init__(self, directory: str, name: str = "state") -> None:
        self.directory = directory
        self.name = name
        self.snapshot: bytes | None = None
        self.records: list[bytes] = []
        self.damaged = False  # a record failed its checksum: later ones were not replayed
        durable.makedirs(directory)
        self.generation = 0
        self._load_snapshot()
        self._file = self._open_log()
        self.logged_bytes = self._file.length
        self._retired: dict[int, durable.AppendFile] = {}  # old generations with jobs in flight

    # Recovery

    def _snapshot_path(self) -> str:
        return os.path.join(self.directory, "snapshot")

    def _log_path(self, generation: int) -> str:
        return os.path.join(self.directory, f"log.{generation}")

    def _load_snapshot(self) -> None:
        path = self._snapshot_path()
        if not os.path.exists(path):
            return
        raw = durable.read_checked(path)
        (self.generation,) = _GEN.unpack_from(raw, 0)
        self.snapshot = raw[_GEN.size:]

    def _open_log(self) -> durable.AppendFile:
        for entry in os.listdir(self.directory):
            if entry.startswith("log.") and entry != f"log.{self.generation}":
                durable.unlink(os.path.join(self.directory, entry))  # an older generation
        path = self._log_path(self.generation)
        if not os.path.exists(path):
            handle = durable.AppendFile.create(path)
            durable.fsync_dir(self.directory)
            return handle
        with open(path, "rb") as f:
            data = f.read()
        good = self._replay(data)
        handle = durable.AppendFile.open(path, len(data))
        if good < len(data):
            handle.cut(good)
        return handle

    def _replay(self, data: bytes) -> int:
        """Parse records; return the length of the valid prefix."""
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            if end > len(data):
                break  # torn tail
            payload = data[pos + _HEAD.size:end]
            if zlib.crc32(payload) != crc:
                self.damaged = True
                log.error("state log %s: record at %d failed its checksum; later records are "
                          "not replayed", self._log_path(self.generation), pos)
                break
            self.records.append(payload)
            pos = end
        return pos

    # Writing

    def append(self, record: bytes) -> None:
        self._file.append(_HEAD.pack(len(record), zlib.crc32(record)) + record)

    def begin_sync(self) -> SyncJob | None:
        return self._file.begin_sync()

    def finish_sync(self, job: SyncJob) -> None:
        assert isinstance(job, durable.AppendSync)
        retired = self._retired.get(job.fd)
        if retired is not None:  # a generation that compaction replaced meanwhile
            retired.inflight -= 1
            if not retired.inflight:
                retired.close()
                del self._retired[job.fd]
            return
        self._file.finish_sync(job)

    def compact(self, snapshot: bytes) -> None:
        """Make `snapshot` the durable state and start an empty log (blocking: fsyncs)."""
        self._file.flush()
        generation = self.generation + 1
        path = self._log_path(generation)
        fresh = durable.AppendFile.create(path)
        durable.fsync_dir(self.directory)
        durable.write_checked(self._snapshot_path(), _GEN.pack(generation) + snapshot)
        old = self._file
        self._file, self.generation, self.snapshot = fresh, generation, snapshot
        self.records = []
        self.logged_bytes = 0
        if old.inflight:
            self._retired[old.fd] = old
        else:
            old.close()
        durable.unlink(old.path)

    def size(self) -> int:
        return self._file.length

    def close(self) -> None:
        try:
            self._file.flush()
            if self._file.durable < self._file.length:
                durable.fdatasync(self._file.fd, self._file.path, self._file.length)
        finally:
            self._file.close()

    def destroy(self) -> None:
        self._file.close()
        for entry in os.listdir(self.directory):
            os.remove(os.path.join(self.directory, entry))
        os.rmdir(self.directory)


class MemoryStateLog:
    """The same interface with no files (consumers with `mem_storage`, or on memory streams)."""

    def __init__(self, name: str = "state") -> None:
        self.name = name
        self.snapshot: bytes | None = None
        self.records: list[bytes] = []
        self.damaged = False

    def append(self, record: bytes) -> None:
        pass

    def begin_sync(self) -> SyncJob | None:
        return None

    def finish_sync(self, job: SyncJob) -> None:
        pass

    def compact(self, snapshot: bytes) -> None:
        pass

    def size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def destroy(self) -> None:
        pass
