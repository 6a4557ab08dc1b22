"""The loop-thread half of a FileStore group commit: what the next job must write and fsync
(`SyncPlanner.begin_sync`), and what a finished job made durable (`finish_sync`).

The planner keeps what the disk is owed: segments with bytes not yet durable (`dirty`), sealed
segments whose index is not written (`unindexed`), retired segments to unlink (`dead`), erasures
to patch in place (`patches`), namespace changes to fsync (`dir_ops`), and the markers: at
`begin_sync` the tombstones the index owes become DEL records and a changed floor (or sequences
used by `skip_msg` that no record holds) one PURGE record, in the active segment. A segment
whose messages are all gone is unlinked once it is at the front and those markers are durable.
A sealed segment that is mostly deleted is rewritten inside the job (`compaction`). With
compression on (`codec`), a segment sealed by this store is compressed (framed, `storage.framing`)
by the first job after its bytes are durable, in place of writing its plain index; an erase in a
framed segment makes it a compaction candidate (frames cannot be patched in place). The job
itself (`syncjob.FileSyncJob`) holds only plain values and runs in a worker thread.

Group commit details beyond `storage.store`:

* `begin_sync()` may be called while an earlier job is outstanding: the new job waits for it in
  `run()` (and fails if it failed). Every job returned must be run; `close()` runs any that were
  not. `finish_sync()` finishes earlier jobs too; a job that is done but never finished is
  finished by the next `begin_sync()`.
* If `job.run()` raises, call `finish_sync(job)` as usual (it does not raise). Nothing the job
  covered is durable. Its bytes stay pending and are written again by the next job, but the
  messages it covered are **withdrawn** (deleted): the publishers waiting on that job are told it
  failed, so their messages must not show up later. Other changes it covered (removals, purges)
  stay applied and become durable with the next successful job. After a failure, `store_msg`
  first tries to write the pending bytes (`get_writes_through`) and raises StoreFull while that
  fails (disk full).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from array import array
from collections import deque

from storage import durable, record, segindex
from storage.filestore import compaction
from storage.filestore.index import StoreIndex
from storage.filestore.layout import full_error, idx_path, new_generation
from storage.filestore.options import FileStoreOptions
from storage.filestore.segreader import SegmentReader
from storage.filestore.syncjob import Compaction, Compress, FileSyncJob, IndexWrite, Plan
from storage.record import SegmentHeader
from storage.segment import DAMAGED, Segment
from storage.store import StoreError, SyncJob

# A job compresses sealed segments of at most this many bytes in all (at least one segment).
COMPRESS_BYTES = 8 << 20

log = logging.getLogger("storage")


class SyncPlanner:
    def __init__(self, ix: StoreIndex, io: SegmentReader, directory: str,
                 opt: FileStoreOptions) -> None:
        self.ix = ix
        self.io = io
        self.directory = directory
        self.opt = opt
        self.dirty: dict[int, Segment] = {}  # segments with bytes not yet durable, by id
        self.unindexed: list[Segment] = []  # sealed segments whose index must be written
        self.dead: list[Segment] = []  # retired segments to unlink
        # erasures: path, offset, bytes, the file's header (the version they are for)
        self.patches: list[tuple[str, int, bytes, bytes]] = []
        self.dir_ops = 0  # namespace changes made (segments created)
        self.dir_synced = 0  # ... and made durable by a directory fsync
        self.jobs: deque[FileSyncJob] = deque()  # begun, not finished; oldest first
        self.degraded: OSError | None = None  # the last sync failed: writes must get through
        self.synced_seq = 0  # every message up to it was covered by a successful sync
        self.written_floor = 0  # the highest floor a marker or segment header records
        self.skip_pending = False  # skip_msg moved last_seq past every record: write a marker
        self.codec: int | None = None  # compress sealed segments with it (`storage.framing`)
        self.compressible: list[Segment] = []  # sealed by this store, to compress once durable

    # Owed to the disk (loop thread)

    def created(self, seg: Segment) -> None:
        """A new segment file: its header and its name must become durable."""
        self.dirty[seg.id] = seg
        self.dir_ops += 1
        self.written_floor = max(self.written_floor, seg.header.floor)

    def queue_index(self, seg: Segment) -> None:
        if not seg.index_queued:
            seg.index_queued = True
            self.unindexed.append(seg)

    def sealed(self, seg: Segment) -> None:
        """A segment was sealed: its index is owed, and its compression when it is on."""
        self.queue_index(seg)
        if self.codec is not None and seg.header.generation and seg.frames is None:
            seg.compress = True
            self.compressible.append(seg)

    def bury(self, seg: Segment) -> None:
        """A front segment left the index (`StoreIndex.on_bury`): unlink it at the next sync,
        and write nothing more to it."""
        self.dead.append(seg)
        self.dirty.pop(seg.id, None)
        if seg in self.unindexed:
            self.unindexed.remove(seg)
        if seg in self.compressible:  # (one being compressed is not: the job finishes it)
            self.compressible.remove(seg)
            seg.compress = False
        self.io.forget(seg)

    def erase(self, seg: Segment, i: int) -> None:
        """Overwrite the record of entry `i` (being removed) with an ERASED record, in the
        window or at the next sync (after its removal is durable: see `FileSyncJob._run`)."""
        if seg.compacting:  # the offsets change: erase in the new file once it is in place
            seg.erase_later.append(seg.seqs[i])
            return
        if seg.frames is not None:  # frames cannot be patched: a compaction drops the record
            seg.erase_owed = True
            self.ix.compact_check = True
            self.io.drop(seg)
            return
        off = seg.offs[i]
        try:
            raw = self.io.record_bytes(seg, i)
            rec = record.record_at(raw, 0, len(raw))
        except OSError:
            rec = None
        if rec is None or rec.kind != record.KIND_MSG:
            return  # damaged already: nothing readable to overwrite
        self.io.block = None  # it may hold the bytes being erased
        new = record.erased(raw[:rec.length])
        if seg.file is None or seg.file.patch(off, new):
            # A segment whose header is damaged has no known header to check the file against.
            guard = record.encode_segment_header(seg.header) if seg.header.generation else b""
            self.patches.append((seg.path, off, new, guard))
            if seg.sealed:  # its index's file CRC changes: write the index again after the patch
                seg.indexed = False
                self.queue_index(seg)

    def flush(self, seg: Segment) -> None:
        """Write buffered bytes from the loop thread (no sync came for a while)."""
        f = seg.file
        assert f is not None  # only segments with an open file have buffered bytes
        try:
            f.flush()
        except OSError as e:
            raise full_error(e, "cannot write") from e
        f.trim(self.opt.cache_bytes, self.opt.retry_bytes)

    def get_writes_through(self) -> None:
        """After a failed sync: store only once buffered bytes can be written again (so a full
        disk refuses publishes at once). While a retry runs, its outcome decides instead."""
        self.reap()
        if self.degraded is None or any(not job.done.is_set() for job in self.jobs):
            return
        for seg in sorted(self.dirty.values(), key=lambda s: s.id):
            if seg.file is not None:
                self.flush(seg)
        self.degraded = None

    # Beginning a job

    def _flush_markers(self) -> None:
        """Owed removals become records in the active segment."""
        ix = self.ix
        seg = ix.active
        f = seg.file
        assert f is not None  # the active segment's file is open
        floor = ix.floor()
        wrote = False
        if floor > self.written_floor or self.skip_pending:
            # Also carries the numbering past skipped sequences that no record holds.
            f.append(record.encode_purge(floor, ix.last_seq, ix.last_ts))
            self.written_floor = max(self.written_floor, floor)
            self.skip_pending = False
            wrote = True
        if ix.pending_tombs:
            tombs = array("Q", (s for s in ix.pending_tombs if s >= floor))
            ix.pending_tombs = array("Q")
            for k in range(0, len(tombs), record.MAX_DEL_SEQS):
                chunk = tombs[k:k + record.MAX_DEL_SEQS]
                f.append(record.encode_del(chunk))
                seg.tombs.extend(chunk)
                wrote = True
        if wrote:
            seg.size = f.length
            self.dirty[seg.id] = seg

    def begin_sync(self) -> SyncJob | None:
        """`MessageStore.begin_sync` (the store checks it is open)."""
        self.reap()
        self._flush_markers()
        plan = Plan(self.directory)
        job_segs: list[Segment] = []
        synced: list[tuple[Segment, int]] = []
        for seg in sorted(self.dirty.values(), key=lambda s: s.id):
            f = seg.file
            assert f is not None  # a dirty segment keeps its file until a job covered it
            if f.handed < f.length:
                plan.writes.append((f.fd, *f.take()))
            if f.length > f.durable:
                plan.syncs.append((f.fd, f.path, f.length))
                synced.append((seg, f.length))
                f.inflight += 1
                job_segs.append(seg)
        self.dirty.clear()
        plan.patches, self.patches = self.patches, []
        indexed = self._plan_indexes(plan)
        compactions = self._plan_compaction(plan)
        compressions = self._plan_compression(plan)
        dead, self.dead = self.dead, []
        for seg in dead:
            plan.unlinks.append(seg.path)
            if os.path.exists(idx_path(self.directory, seg.id)) or seg.index_queued:
                plan.unlinks.append(idx_path(self.directory, seg.id))
        plan.sync_dir = self.dir_ops > self.dir_synced
        if plan.empty():
            return None
        job = FileSyncJob(plan, self.jobs[-1] if self.jobs else None)
        job.synced = synced
        job.indexed = indexed
        job.dead = dead
        job.dir_ops = self.dir_ops
        job.segs = job_segs
        job.compactions = compactions
        job.compressions = compressions
        job.seq_hi = self.ix.last_seq
        self.jobs.append(job)
        return job

    def _plan_indexes(self, plan: Plan) -> list[Segment]:
        ready = []
        names_of = self.ix.subjects.names
        for seg in self.unindexed:
            if seg.compacting or seg.compress:
                continue  # the compaction or compression writes its index
            if seg.file is not None and seg.file.handed < seg.file.length:
                continue  # pragma: no cover - begin_sync hands every dirty byte to the job
            names = [names_of[g] for g in seg.lsub_gid]
            head, blobs = segindex.head_and_blobs(seg, names)
            plan.indexes.append(IndexWrite(seg.path, idx_path(self.directory, seg.id), seg.size,
                                           head, blobs))
            ready.append(seg)
        for seg in self.unindexed:
            if seg.compacting and not seg.compress:
                seg.index_queued = False  # queued again if the compaction does not write it
        self.unindexed = [s for s in self.unindexed
                          if s not in ready and (s.compress or not s.compacting)]
        for seg in ready:
            seg.index_queued = False
        return ready

    def _plan_compaction(self, plan: Plan) -> list[compaction.Planned]:
        ix = self.ix
        if not ix.compact_check:
            return []
        planned = compaction.plan(ix, self.directory, self.opt, self.written_floor)
        if planned is None:
            ix.compact_check = False
            return []
        plan.compactions.append(planned[1])
        return [planned]

    def _plan_compression(self, plan: Plan) -> list[tuple[Segment, Compress]]:
        """Compress sealed segments whose bytes are durable (closed), up to COMPRESS_BYTES. A
        segment that can no longer be (compression turned off, damage found) is given up: its
        plain index is written instead."""
        if not self.compressible:
            return []
        planned: list[tuple[Segment, Compress]] = []
        budget = COMPRESS_BYTES
        waiting = []
        for seg in self.compressible:
            if (self.codec is None or DAMAGED in seg.flags or seg.gaps
                    or seg.frames is not None):
                seg.compress = False
                continue
            if seg.file is not None or seg.compacting or (planned and seg.size > budget):
                waiting.append(seg)  # not durable yet, or for the next job
                continue
            planned.append((seg, self._compress(seg)))
            budget -= seg.size
        self.compressible = waiting
        for seg, c in planned:
            plan.compressions.append(c)
            if seg in self.unindexed:
                self.unindexed.remove(seg)
            seg.index_queued = False
        return planned

    def _compress(self, seg: Segment) -> Compress:
        """Plan the compression of `seg`: while it runs the plain file is read through a pinned
        fd and erasures wait, as for a compaction."""
        assert self.codec is not None
        h = seg.header
        head, blobs = segindex.head_and_blobs(seg, [self.ix.subjects.names[g]
                                                    for g in seg.lsub_gid])
        c = Compress(seg.path, idx_path(self.directory, seg.id), seg.size,
                     record.encode_segment_header(h),
                     SegmentHeader(h.seg_id, new_generation(), h.floor, h.next_seq, h.last_ts,
                                   True),
                     array("I", seg.offs), self.codec, self.opt.frame_bytes, head, blobs)
        seg.compacting = True
        seg.pin_fd = durable.open_ro(seg.path)
        return c

    def compress_pending(self) -> bool:
        """Segments wait for compression that a job could compress now."""
        return self.codec is not None and any(
            seg.file is None and not seg.compacting for seg in self.compressible)

    # Finishing jobs

    def reap(self) -> None:
        """Finish the jobs at the front that are done."""
        while self.jobs and self.jobs[0].done.is_set():
            self._finalize(self.jobs.popleft())

    def finish_sync(self, job: SyncJob) -> None:
        """`MessageStore.finish_sync`: finishes earlier jobs too."""
        if not isinstance(job, FileSyncJob) or job.finished:
            return
        while self.jobs:
            head = self.jobs[0]
            if not head.done.is_set():
                raise StoreError("finish_sync() called before the job ran")
            self.jobs.popleft()
            self._finalize(head)
            if head is job:
                return

    def _finalize(self, job: FileSyncJob) -> None:
        job.finished = True
        for seg in job.segs:
            f = seg.file
            assert f is not None  # the job holds it open (inflight)
            f.inflight -= 1
        for planned in job.compactions:
            self._finish_compaction(*planned)
        for seg, c in job.compressions:
            self._finish_compression(seg, c)
        if job.error is not None:
            self._sync_failed(job)
            return
        for seg, length in job.synced:
            f = seg.file
            assert f is not None  # the job held it open
            f.synced(length)
        self.synced_seq = max(self.synced_seq, job.seq_hi)
        self.degraded = None
        for seg in job.indexed:
            seg.indexed = True
        self.dir_synced = max(self.dir_synced, job.dir_ops)
        for seg in job.dead:
            if seg.file is not None and not seg.file.inflight:
                seg.file.close()
                seg.file = None
        for seg in job.segs:
            f = seg.file
            if f is None:
                continue
            if seg.sealed and f.durable == f.length and not f.inflight:
                f.close()
                seg.file = None
            else:
                f.trim(self.opt.cache_bytes, self.opt.retry_bytes)

    def _finish_compaction(self, seg: Segment, c: Compaction, new: Segment,
                           keep: list[int]) -> None:
        """After the job (even a failed one): use the new layout if the new file is in place."""
        seg.compacting = False
        if seg.pin_fd is not None:
            os.close(seg.pin_fd)
            seg.pin_fd = None
        self.io.forget(seg)
        if c.error is not None:
            log.warning("store %s: could not compact segment %d (%s)%s", self.ix.name, seg.id,
                        c.error, "" if c.renamed else "; it stays as it is")
            self.ix.compact_check = False  # not at every sync: the next deletion tries again
        if c.renamed:
            compaction.adopt(seg, c, new, keep)
            if not c.indexed:
                self.queue_index(seg)
            log.info("store %s: compacted segment %d to %d bytes", self.ix.name, seg.id,
                     seg.size)
        erase, seg.erase_later = seg.erase_later, []
        for seq in erase:
            i = seg.find(seq)
            if i >= 0:
                self.erase(seg, i)

    def _finish_compression(self, seg: Segment, c: Compress) -> None:
        """After the job (even a failed one): the segment is framed if the new file is in
        place; its index is owed if none was written; a compression the job never reached is
        tried again."""
        seg.compacting = False
        if seg.pin_fd is not None:
            os.close(seg.pin_fd)
            seg.pin_fd = None
        self.io.forget(seg)
        self.io.drop(seg)
        seg.compress = False
        if c.renamed:
            assert c.table is not None  # set with renamed
            seg.header = c.new_header
            seg.frames = c.table
            seg.size = c.table.size
            log.debug("store %s: compressed segment %d from %d to %d bytes", self.ix.name,
                      seg.id, c.size, seg.size)
        elif c.error is not None:
            log.warning("store %s: could not compress segment %d (%s); it stays uncompressed",
                        self.ix.name, seg.id, c.error)
        elif c.skipped:
            log.info("store %s: segment %d stays uncompressed: %s", self.ix.name, seg.id,
                     c.skipped)
        elif self.codec is not None and id(seg) in set(map(id, self.ix.segs)):
            seg.compress = True  # the job failed before it got there
            self.compressible.append(seg)
        seg.indexed = c.indexed
        if not c.indexed:
            self.queue_index(seg)
        erase, seg.erase_later = seg.erase_later, []
        for seq in erase:
            i = seg.find(seq)
            if i >= 0:
                self.erase(seg, i)

    def _sync_failed(self, job: FileSyncJob) -> None:
        """Nothing the job covered is durable. Its bytes stay pending (the next job writes them
        again), but the messages it covered are withdrawn: whoever waited on this job is told it
        failed, so those messages must never show up later."""
        error = job.error
        self.degraded = error if isinstance(error, OSError) else OSError(errno.EIO, str(error))
        alive = set(map(id, self.ix.segs))
        for seg in job.segs:
            f = seg.file
            assert f is not None  # the job held it open
            f.failed()
            if id(seg) in alive:
                self.dirty[seg.id] = seg
        for seg in job.indexed:
            if id(seg) in alive:
                self.queue_index(seg)
        self.patches = job.plan.patches + self.patches
        self.dead = job.dead + self.dead
        withdrawn = self._withdraw(self.synced_seq + 1, job.seq_hi)
        log.error("store %s: sync failed (%s); %d unsynced messages withdrawn", self.ix.name,
                  error, withdrawn)

    def _withdraw(self, lo: int, hi: int) -> int:
        """Delete the live messages with lo <= seq <= hi."""
        ix = self.ix
        removed = 0
        for seg, i in ix.live_in(lo, hi):
            ix.delete_at(seg, i)
            removed += 1
        ix.drop_dead_front()
        return removed

    def sync_everything(self) -> OSError | None:
        """Run every outstanding job (begun but not run, or running in another thread) and one
        more covering everything since, and finish them all. Returns the last job's error: an
        earlier failure is retried by that last job."""
        for outstanding in list(self.jobs):
            with contextlib.suppress(OSError):
                outstanding.run()
        self.reap()
        job = self.begin_sync()
        if job is None:
            return None
        error = None
        try:
            job.run()
        except OSError as e:
            error = e
        self.finish_sync(job)
        return error
