"""The worker-thread half of a FileStore group commit: `FileSyncJob` runs a `Plan`.

`storage.filestore.syncplan` builds the plan on the loop thread. The plan holds only plain values
(fds, offsets, bytes, paths), never store objects, so `run()` touches no store state. Order
inside `run()` is what makes a crash at any point recoverable:

1. write the buffered bytes (pwrite at their offsets) and in-place patches (erase);
2. fdatasync every file written since the last job, oldest segment first;
3. write the persisted indexes of sealed segments (they describe now-durable bytes);
4. compact a mostly-deleted sealed segment (the tombstones that deleted its records were synced
   in step 2, so dropping the records cannot resurrect anything);
5. unlink dead segments (the markers that made them dead were synced in step 2);
6. fsync the directory (new segments, index renames, unlinks).

Jobs are chained: a job begun while an earlier one is still outstanding waits for it in `run()`
and fails if it failed, so durability is always a prefix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from storage import durable, record, segindex
from storage.segment import Segment
from storage.store import SyncJob

# A job writing at most this much (and syncing one file) counts as small: see `SyncJob.small`.
SMALL_WRITE = 16 * 1024


@dataclass
class IndexWrite:
    """Write `<id>.idx` for a sealed segment whose bytes [0, size) are durable."""

    seg_path: str
    idx_path: str
    size: int
    head: dict[str, Any]
    blobs: list[bytes]

    def run(self) -> None:
        fd = durable.open_ro(self.seg_path)
        try:
            data = os.pread(fd, self.size, 0)
        finally:
            os.close(fd)
        if len(data) != self.size:
            raise OSError(errno.EIO, f"{self.seg_path}: {len(data)} bytes, expected {self.size}")
        durable.write_checked(self.idx_path, segindex.finish(self.head, self.blobs,
                                                              zlib.crc32(data)))


@dataclass
class Compaction:
    """Rewrite a sealed segment keeping only some records: copy them (their own CRCs travel
    with them) behind a new header, append the markers that must survive, write it as a
    temporary file, fdatasync, rename it over the segment, then write its new index."""

    seg_path: str
    idx_path: str
    header: bytes
    ranges: list[tuple[int, int]]  # (offset, length) in the old file, ascending, merged
    markers: bytes
    head: dict[str, Any]
    blobs: list[bytes]
    renamed: bool = False  # the new file is in place (even if a later step failed)
    indexed: bool = False

    def _aligned(self, data: bytes) -> bool:
        """Every copied range must start with a valid record (cheap: one check per range)."""
        pos = len(self.header)
        for _, length in self.ranges:
            if record.record_at(data, pos, len(data)) is None:
                return False
            pos += length
        return True

    def run(self) -> None:
        fd = durable.open_ro(self.seg_path)
        try:
            parts = [self.header]
            parts += [os.pread(fd, length, offset) for offset, length in self.ranges]
        finally:
            os.close(fd)
        parts.append(self.markers)
        data = b"".join(parts)
        if len(data) != self.head["size"] or not self._aligned(data):
            raise OSError(errno.EIO, f"{self.seg_path}: compaction read unexpected bytes; "
                                     "keeping the segment as it is")
        tmp = self.seg_path + ".compact.tmp"
        if os.path.exists(tmp):
            durable.unlink(tmp)
        out = durable.create(tmp)
        try:
            durable.pwrite_all(out, data, 0)
            durable.fdatasync(out, tmp, len(data))
        finally:
            os.close(out)
        durable.rename(tmp, self.seg_path)
        self.renamed = True
        durable.write_checked(self.idx_path, segindex.finish(self.head, self.blobs,
                                                              zlib.crc32(data)))
        self.indexed = True


@dataclass
class Plan:
    directory: str
    writes: list[tuple[int, int, bytes]] = field(default_factory=list)  # fd, offset, bytes
    patches: list[tuple[str, int, bytes]] = field(default_factory=list)  # path, offset, bytes
    syncs: list[tuple[int, str, int]] = field(default_factory=list)  # fd, path, durable length
    indexes: list[IndexWrite] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)
    unlinks: list[str] = field(default_factory=list)
    sync_dir: bool = False

    def empty(self) -> bool:
        return not (self.writes or self.patches or self.syncs or self.indexes or self.unlinks
                    or self.compactions or self.sync_dir)


class FileSyncJob(SyncJob):
    """See the module docstring. The store keeps the bookkeeping (`segs`, `dead`, ...) that
    `finish_sync` applies; `run()` reads only `plan`."""

    def __init__(self, plan: Plan, prev: FileSyncJob | None) -> None:
        self.plan = plan
        self._prev = prev
        self._lock = threading.Lock()
        self._started = False
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.finished = False
        # Bookkeeping for finish_sync (loop thread only).
        self.synced: list[tuple[Segment, int]] = []  # (segment, durable length)
        self.indexed: list[Segment] = []
        self.dead: list[Segment] = []
        self.segs: list[Segment] = []  # segments whose fd the job holds
        # (segment, its rewrite, the segment as rewritten, the entries kept)
        self.compactions: list[tuple[Segment, Compaction, Segment, list[int]]] = []
        self.seq_hi = 0  # the last message sequence stored when the job began
        self.dir_ops = 0

    @property
    def small(self) -> bool:
        plan = self.plan
        return (len(plan.writes) <= 1 and len(plan.syncs) == 1
                and sum(len(data) for _, _, data in plan.writes) <= SMALL_WRITE
                and not (plan.patches or plan.indexes or plan.compactions or plan.unlinks
                         or plan.sync_dir)
                and (self._prev is None or self._prev.done.is_set()))

    def run(self) -> None:
        with self._lock:
            started, self._started = self._started, True
        if started:  # a second call (close() finishing a job) waits for the first
            self.done.wait()
            if self.error is not None:
                raise self.error
            return
        try:
            self._run()
        except BaseException as e:
            self.error = e
            raise
        finally:
            self._prev = None
            self.done.set()

    def _run(self) -> None:
        prev = self._prev
        if prev is not None:
            prev.done.wait()
            if prev.error is not None:
                code = getattr(prev.error, "errno", None) or errno.EIO
                raise OSError(code, f"an earlier sync failed: {prev.error}")
        plan = self.plan
        for fd, offset, data in plan.writes:
            durable.pwrite_all(fd, data, offset)
        for fd, path, length in plan.syncs:
            durable.fdatasync(fd, path, length)
        # Erase in place only once the removal (tombstone or floor) is durable: an erased record
        # on disk without it would be taken for a live message whose record is damaged (an
        # erased record is as valid as the message was, and of the same length, so even the
        # segment's CRC in its index stays the same).
        for path, offset, data in plan.patches:
            self._patch(path, offset, data)
        for index in plan.indexes:
            index.run()
        for compaction in plan.compactions:
            compaction.run()
        for path in plan.unlinks:
            with contextlib.suppress(FileNotFoundError):
                durable.unlink(path)
        if plan.sync_dir or plan.unlinks:
            durable.fsync_dir(plan.directory)

    @staticmethod
    def _patch(path: str, offset: int, data: bytes) -> None:
        try:
            fd = durable.open_rw(path)
        except FileNotFoundError:  # the segment was dropped meanwhile: nothing left to erase
            return
        try:
            durable.pwrite_all(fd, data, offset)
            durable.fdatasync(fd, path, None)
        finally:
            os.close(fd)
