"""The worker-thread half of a FileStore group commit: `FileSyncJob` runs a `Plan`.

`storage.filestore.syncplan` builds the plan on the loop thread. The plan holds only plain values
(fds, offsets, bytes, paths), never store objects, so `run()` touches no store state. Order
inside `run()` is what makes a crash at any point recoverable:

1. write the buffered bytes (pwrite at their offsets) and in-place patches (erase);
2. fdatasync every file written since the last job, oldest segment first;
3. write the persisted indexes of sealed segments (they describe now-durable bytes);
4. compact a mostly-deleted sealed segment (the tombstones that deleted its records were synced
   in step 2, so dropping the records cannot resurrect anything);
5. compress sealed, durable segments (`Compress`: same logical bytes, framed);
6. unlink dead segments (the markers that made them dead were synced in step 2);
7. fsync the directory (new segments, index renames, unlinks).

Steps 4 and 5 replace a file by writing a temporary one, fdatasyncing it and renaming it over the
segment, then write its index: a crash leaves the old file or the new one, each readable (an index
that does not match its segment is rebuilt by a scan at open).

Jobs are chained: a job begun while an earlier one is still outstanding waits for it in `run()`
and fails if it failed, so durability is always a prefix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from storage import durable, framing, record, segindex
from storage.framing import FrameTable
from storage.record import SegmentHeader
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


def _replace_file(path: str, data: bytes) -> None:
    """Put `data` in place of the file `path`: a temporary file, fdatasync, rename (the caller
    fsyncs the directory, or writes an index, which does)."""
    tmp = path + ".compact.tmp"
    if os.path.exists(tmp):
        durable.unlink(tmp)
    out = durable.create(tmp)
    try:
        durable.pwrite_all(out, data, 0)
        durable.fdatasync(out, tmp, len(data))
    finally:
        os.close(out)
    durable.rename(tmp, path)


def _framed_index(head: dict[str, Any], blobs: list[bytes],
                  table: FrameTable) -> tuple[dict[str, Any], list[bytes]]:
    """The index of a segment as framed by `table` (`head` and `blobs` describe its records)."""
    head = {**head, "framed": True, "size": table.size, "logical_size": table.end}
    return head, [*blobs[:-2], table.lo.tobytes(), table.off.tobytes()]


@dataclass
class Compaction:
    """Rewrite a sealed segment keeping only some records: copy them (their own CRCs travel
    with them) behind a new header, append the markers that must survive, write it as a
    temporary file, fdatasync, rename it over the segment, then write its new index. A framed
    segment's records are read from its frames, and the result is framed again (`codec`). An
    OSError is kept in `error`, not raised (as for `Compress`): the records it would drop were
    deleted by markers this job made durable before it, and the job's durability does not
    depend on the rewrite, so its failure must not withdraw the messages the job covers."""

    seg_path: str
    idx_path: str
    header: bytes
    ranges: list[tuple[int, int]]  # (offset, length) in the old logical bytes, ascending, merged
    markers: bytes
    head: dict[str, Any]
    blobs: list[bytes]
    source: FrameTable | None = None  # the old file's frames when it is framed
    codec: int | None = None  # frame the result with this codec
    starts: array | None = None  # where the result's messages begin (frames are cut there)
    frame_bytes: int = framing.FRAME_BYTES
    renamed: bool = False  # the new file is in place (even if a later step failed)
    indexed: bool = False
    table: FrameTable | None = None  # the new file's frames, when framed
    error: OSError | None = None

    def _aligned(self, data: bytes) -> bool:
        """Every copied range must start with a valid record (cheap: one check per range)."""
        pos = len(self.header)
        for _, length in self.ranges:
            if record.record_at(data, pos, len(data)) is None:
                return False
            pos += length
        return True

    def _read(self) -> list[bytes]:
        fd = durable.open_ro(self.seg_path)
        try:
            if self.source is None:
                return [os.pread(fd, length, offset) for offset, length in self.ranges]
            raw = os.pread(fd, self.source.size, 0)
        finally:
            os.close(fd)
        unframed = framing.unframe(raw, framing.Codecs())
        if unframed.damaged or len(raw) != self.source.size:
            raise OSError(errno.EIO, f"{self.seg_path}: damaged frames; keeping the segment as "
                                     "it is")
        logical = unframed.logical
        return [logical[offset:offset + length] for offset, length in self.ranges]

    def run(self) -> None:
        try:
            self._run()
        except OSError as e:
            self.error = e

    def _run(self) -> None:
        parts = [self.header, *self._read(), self.markers]
        data = b"".join(parts)
        if len(data) != self.head["logical_size"] or not self._aligned(data):
            raise OSError(errno.EIO, f"{self.seg_path}: compaction read unexpected bytes; "
                                     "keeping the segment as it is")
        head, blobs = self.head, self.blobs
        if self.codec is not None:
            try:
                data, self.table = framing.frame_segment(
                    self.header, data, self.starts if self.starts is not None else [],
                    self.codec, self.frame_bytes, framing.Codecs())
            except ValueError as e:
                raise OSError(errno.EIO, f"{self.seg_path}: cannot frame the compacted "
                                         f"segment ({e}); keeping it as it is") from e
            head, blobs = _framed_index(head, blobs, self.table)
        _replace_file(self.seg_path, data)
        self.renamed = True
        durable.write_checked(self.idx_path, segindex.finish(head, blobs, zlib.crc32(data)))
        self.indexed = True


@dataclass
class Compress:
    """Rewrite a sealed, durable plain segment as a framed one (`storage.framing`): the same
    logical bytes, so the segment's index entries stay as they are, compressed in frames behind
    a new header (a new generation). Written as a temporary file, fdatasynced and renamed over
    the segment, then its index is written. When framing would save less than 1/16 of its
    bytes, it stays plain (`skipped` says why) and its
    plain index is written instead (it was held back for this step). Records are not parsed
    here (frames are cut at the message offsets the index knows). An OSError is kept in
    `error`, not raised: the job's durability does not depend on this step (the segment's bytes
    were durable before it was planned), so a failed compression must not fail the publishes
    the job covers; the leftover temporary file is removed at the next open."""

    seg_path: str
    idx_path: str
    size: int  # the plain file's length
    old_header: bytes  # the plain file must start with it (the version this plan is for)
    new_header: SegmentHeader  # framed, new generation
    starts: array  # where its messages begin (frames are cut there)
    codec: int
    frame_bytes: int
    head: dict[str, Any]  # the plain segment's index (file CRC aside)
    blobs: list[bytes]
    renamed: bool = False
    indexed: bool = False
    table: FrameTable | None = None
    skipped: str = ""
    error: OSError | None = None

    def run(self) -> None:
        try:
            self._run()
        except OSError as e:
            self.error = e

    def _run(self) -> None:
        fd = durable.open_ro(self.seg_path)
        try:
            data = os.pread(fd, self.size, 0)
        finally:
            os.close(fd)
        if len(data) != self.size or not data.startswith(self.old_header):
            raise OSError(errno.EIO, f"{self.seg_path}: not the segment planned for "
                                     "compression; keeping it as it is")
        header = record.encode_segment_header(self.new_header)
        try:
            framed, table = framing.frame_segment(header, data, self.starts, self.codec,
                                                  self.frame_bytes, framing.Codecs())
            if table.size * 16 > self.size * 15:
                raise ValueError(f"{self.size} bytes would only shrink to {table.size}")
        except ValueError as e:
            self.skipped = str(e)
            durable.write_checked(self.idx_path, segindex.finish(self.head, self.blobs,
                                                                  zlib.crc32(data)))
            self.indexed = True
            return
        _replace_file(self.seg_path, framed)
        self.renamed = True
        self.table = table
        h = self.new_header
        head = {**self.head, "header": [h.generation, h.floor, h.next_seq, h.last_ts]}
        head, blobs = _framed_index(head, self.blobs, table)
        durable.write_checked(self.idx_path, segindex.finish(head, blobs, zlib.crc32(framed)))
        self.indexed = True


@dataclass
class Plan:
    directory: str
    writes: list[tuple[int, int, bytes]] = field(default_factory=list)  # fd, offset, bytes
    # erasures: path, offset, bytes, and the header the file must have (its version)
    patches: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    syncs: list[tuple[int, str, int]] = field(default_factory=list)  # fd, path, durable length
    indexes: list[IndexWrite] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)
    compressions: list[Compress] = field(default_factory=list)
    unlinks: list[str] = field(default_factory=list)
    sync_dir: bool = False

    def empty(self) -> bool:
        return not (self.writes or self.patches or self.syncs or self.indexes or self.unlinks
                    or self.compactions or self.compressions or self.sync_dir)


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
        self.compressions: list[tuple[Segment, Compress]] = []
        self.seq_hi = 0  # the last message sequence stored when the job began
        self.dir_ops = 0

    @property
    def small(self) -> bool:
        plan = self.plan
        return (len(plan.writes) <= 1 and len(plan.syncs) == 1
                and sum(len(data) for _, _, data in plan.writes) <= SMALL_WRITE
                and not (plan.patches or plan.indexes or plan.compactions
                         or plan.compressions or plan.unlinks or plan.sync_dir)
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
        for path, offset, data, header in plan.patches:
            self._patch(path, offset, data, header)
        for index in plan.indexes:
            index.run()
        for compaction in plan.compactions:
            compaction.run()
        for compress in plan.compressions:
            compress.run()
        for path in plan.unlinks:
            with contextlib.suppress(FileNotFoundError):
                durable.unlink(path)
        if plan.sync_dir or plan.unlinks:
            durable.fsync_dir(plan.directory)

    @staticmethod
    def _patch(path: str, offset: int, data: bytes, header: bytes) -> None:
        try:
            fd = durable.open_rw(path)
        except FileNotFoundError:  # the segment was dropped meanwhile: nothing left to erase
            return
        try:
            if os.pread(fd, len(header), 0) != header:
                # Another version of the file: a patch given back by a failed job whose later
                # step rewrote the segment (compaction, compression) after this patch was
                # applied. The offsets are not this file's, and the rewrite read erased bytes.
                return
            durable.pwrite_all(fd, data, offset)
            durable.fdatasync(fd, path, None)
        finally:
            os.close(fd)
