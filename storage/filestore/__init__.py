"""FileStore: one stream's messages in segment files, with group commit and crash recovery.

    from storage.filestore import FileStore, FileStoreOptions

Segment file (`<id>.seg`, see `layout` for the directory): a 52-byte header (magic, segment id, a
random generation, the store's floor, next sequence and last timestamp when the segment was
created; CRC32) followed by records `header | subject | headers | payload | crc32`
(`storage.record`): messages (seq, timestamp, ttl), erased messages, tombstones (DEL: u64
sequences) and purge markers (PURGE: "all below N are gone", with the last sequence and timestamp
so numbering survives an empty store, and sequences used by `skip_msg` that no record holds: one
marker per sync however many were skipped). A segment is sealed when it reaches `segment_bytes`
or `segment_msgs`; its index is written once its bytes are durable, and its file is closed once
they are.

Index `<id>.idx` (`storage.segindex`): per message offset, size, timestamp and local subject id
(plus the sequences when they are not contiguous), a subject table with per-subject counts and
first/last sequence, the markers and ttls the segment holds, damaged stretches, and the CRC32 of
the whole segment file it describes (checked at open, so a bit flip in a sealed segment is found
without parsing it).

Compression (`StoreConfig.compression` "s2"): a segment sealed while it is on is rewritten,
once its bytes are durable, as a framed segment (`storage.framing`): the same logical bytes in
compressed frames of about `frame_bytes`, each with its own checksums. Offsets everywhere stay
logical, so only reading (`segreader`), opening (`recovery`) and rewriting (`compaction`,
`truncplan`) know frames. The active segment is always plain; segments keep the form they were
written in, so turning compression on or off applies to segments sealed from then on.

Bytes: `state().bytes` and `max_bytes` count nats-server's file-store record size
(`store.file_msg_size`: 30 + subject + headers + payload, + 4 with headers), not this format's.

Truncation (`truncate`): sync everything, rewrite the segment holding the cut as a copy of its
bytes up to the first record that must go plus fresh markers (tombstones that lived above the cut,
a PURGE with the new last sequence), remove the segments above, all committed by one intent file
so a crash leaves the store truncated or not; then rebuild the in-memory state from the files.

Modules: one concept each, mapped in storage/README.md. Why composition and not mixins: every
concept reads and changes the same in-memory state (segments, subjects, counts, damage), so that
state is one object, `StoreIndex` (index.py), handed to the concepts that need it; state only one
concept uses stays with it (the reader's fds and kept block, the planner's queues of what the
disk is owed). `FileStore` builds and wires them and delegates to them, keeping only the write
path (`store_msg`, the hottest code, touches the index directly), truncation and the lifecycle.
The one call back is `StoreIndex.on_bury` (a segment left the index: the planner unlinks it at
the next sync). Modules import `index`, never this facade, so the package has no import cycle.
"""

from __future__ import annotations

import heapq
import logging
import os
import time

from storage import durable, framing, record, truncation
from storage.durable import AppendFile
from storage.filestore import retention, truncplan
from storage.filestore.index import StoreIndex
from storage.filestore.layout import full_error, new_generation, seg_path
from storage.filestore.options import FileStoreOptions
from storage.filestore.reading import Reader
from storage.filestore.recovery import Recovery
from storage.filestore.segreader import SegmentReader
from storage.filestore.syncplan import SyncPlanner
from storage.record import SEGMENT_HEADER_SIZE, SegmentHeader
from storage.segment import Segment
from storage.store import (
    ALL,
    FILE_HDR_OVERHEAD,
    FILE_MSG_OVERHEAD,
    MessageStore,
    StoreConfig,
    StoredMessage,
    StoreError,
    StoreState,
    SyncJob,
    file_msg_size,
    subject_len,
    truncation_needed,
)

__all__ = ["FileStore", "FileStoreOptions"]

log = logging.getLogger("storage")


class FileStore(MessageStore):
    """See the package docstring. Not thread-safe: one loop thread, plus `SyncJob.run` anywhere."""

    def __init__(self, directory: str, config: StoreConfig,
                 options: FileStoreOptions | None = None) -> None:
        self.config = config
        self._dir = os.path.abspath(directory)
        self._opt = options or FileStoreOptions()
        if not 0 < self._opt.segment_bytes < (1 << 31):
            raise ValueError("segment_bytes must be positive and below 2 GiB")
        if self._opt.frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        framing.codec_for(config.compression)  # ValueError when unknown
        self._init_state()
        self._open(self._opt.verify_segments)

    def _init_state(self) -> None:
        """Every in-memory structure, empty (opening fills them from the files)."""
        self._ix = StoreIndex(self.config.name)
        self._io = SegmentReader(self._opt.max_readers)
        self._reader = Reader(self._ix, self._io)
        self._sync = SyncPlanner(self._ix, self._io, self._dir, self._opt)
        self._sync.codec = framing.codec_for(self.config.compression)
        self._ix.on_bury = self._sync.bury
        self._closed = False
        self._limited = retention.is_limited(self.config)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    # -----------------------------------------------------------------------------------------
    # Opening

    def _open(self, verify: bool) -> None:
        """Read the files back (`recovery`), then get ready to write. `verify`: check sealed
        segments' CRCs against their indexes."""
        started = time.monotonic()
        durable.makedirs(self._dir)
        recovery = Recovery(self._dir, self.config.name, verify, self._opt.progress_every,
                            self._sync.codec is not None)
        floor = recovery.run(self._ix, self.config.first_seq)
        self._ready(floor)
        durable.fsync_dir(self._dir)  # whatever recovery serves from now on is durable
        self._sync.dir_synced = self._sync.dir_ops
        elapsed = time.monotonic() - started
        log.info("store %s opened: %d messages in %d segments in %.3fs", self.config.name,
                 self._ix.msgs, len(self._ix.segs), elapsed)

    def _ready(self, floor: int) -> None:
        """After recovery: an active segment to append to, sealed segments' indexes queued,
        dead front segments retired, limits enforced."""
        ix, sync = self._ix, self._sync
        sync.written_floor = floor
        sync.synced_seq = ix.last_seq  # recovery made everything it serves durable
        segs = ix.segs
        if segs and segs[-1].file is not None:
            ix.active = segs[-1]
        else:
            if segs:
                segs[-1].sealed = True
            self._new_segment()
        for seg in ix.segs:
            if seg.sealed and not seg.indexed and seg.header.generation:
                if seg.compress:
                    seg.compress = False
                    sync.sealed(seg)  # compressed by the next sync, which writes its index
                else:
                    sync.queue_index(seg)
        ix.drop_dead_front()
        retention.enforce_all(ix, self.config)

    # -----------------------------------------------------------------------------------------
    # Writing

    def _new_segment(self) -> Segment:
        ix = self._ix
        seg_id = ix.segs[-1].id + 1 if ix.segs else 1
        path = seg_path(self._dir, seg_id)
        header = SegmentHeader(seg_id, new_generation(), ix.floor(), ix.last_seq + 1,
                               ix.last_ts)
        f = AppendFile.create(path)  # raises OSError with nothing changed
        seg = Segment(seg_id, path, header)
        seg.file = f
        seg.size = f.append(record.encode_segment_header(header)) + SEGMENT_HEADER_SIZE
        ix.segs.append(seg)
        ix.bases.append(seg.base)
        ix.active = seg
        self._sync.created(seg)
        return seg

    def _roll(self) -> Segment:
        old = self._ix.active
        try:
            new = self._new_segment()
        except OSError as e:
            raise full_error(e, "cannot create a segment") from e
        old.sealed = True
        old.match_cache.clear()
        f = old.file
        assert f is not None  # it was the active segment
        if f.durable == f.length and not f.inflight and old.id not in self._sync.dirty:
            # Already durable: no job will finish it, so release its fd and window now (a job
            # that covers it, pending or running, closes it when it finishes instead).
            f.close()
            old.file = None
        self._sync.sealed(old)
        self._ix.drop_dead_front()
        return new

    def store_msg(self, subject: str, hdr: bytes, data: bytes, ts: int, ttl: int = 0) -> int:
        sync = self._sync
        if sync.degraded is not None or self._closed:
            self._check_open()
            sync.get_writes_through()
        ix = self._ix
        subs = ix.subjects
        seq = ix.last_seq + 1
        gid = subs.ids.get(subject)
        if gid is None:
            gid = subs.intern(subject)
        raw = subs.raw[gid]
        rec = record.encode_msg(seq, ts, ttl, raw, hdr, data)
        seg = ix.active
        f = seg.file
        assert f is not None  # the active segment's file is open
        opt = self._opt
        if (f.length + len(rec) > opt.segment_bytes and seg.seqs) or \
                len(seg.seqs) >= opt.segment_msgs:
            seg = self._roll()
            f = seg.file
            assert f is not None
        elif f.length - f.handed >= opt.flush_bytes:
            sync.flush(seg)
        off = f.append(rec)
        seg.size = f.length
        size = FILE_MSG_OVERHEAD + len(raw) + len(hdr) + len(data)
        if hdr:  # file_msg_size, inlined
            size += FILE_HDR_OVERHEAD
            seg.add(seq, off, size, ts, gid, 1)
        else:
            seg.add(seq, off, size, ts, gid, 0)
        sync.dirty[seg.id] = seg
        sync.skip_pending = False  # this record carries the numbering
        ix.last_seq = seq
        ix.last_ts = ts
        ix.msgs += 1
        ix.bytes += size
        count = subs.count[gid]
        if not count:
            subs.first[gid] = seq
            subs.nsubj += 1
        subs.count[gid] = count + 1
        subs.last[gid] = seq
        if subs.stale_last:
            subs.stale_last.discard(gid)
        if ttl:
            heapq.heappush(ix.ttl_heap, (ts + ttl, seq))
            seg.ttl_seqs.append(seq)
            seg.ttl_exps.append(ts + ttl)
        if self._limited:
            retention.enforce_after_store(ix, self.config, gid)
        return seq

    def skip_msg(self, ts: int) -> int:
        self._check_open()
        ix = self._ix
        seq = ix.last_seq + 1
        ix.last_seq = seq
        ix.last_ts = ts
        if ix.first == seq:  # nothing live: the front moves past it
            ix.first = seq + 1
        self._sync.skip_pending = True
        return seq

    def skip_msgs(self, first_seq: int) -> None:
        self._check_open()
        ix = self._ix
        if first_seq <= ix.last_seq:
            raise StoreError(f"skip_msgs({first_seq}) would move back from last sequence "
                             f"{ix.last_seq}")
        retention.purge_all(ix)
        ix.last_seq = first_seq - 1
        ix.first = first_seq

    # -----------------------------------------------------------------------------------------
    # Removing (see `retention`)

    def remove(self, seq: int, erase: bool = False) -> bool:
        self._check_open()
        return retention.remove(self._ix, seq, self._sync.erase if erase else None)

    def purge(self, subject: str | None = None, seq: int = 0, keep: int = 0) -> int:
        self._check_open()
        return retention.purge(self._ix, subject, seq, keep)

    def expire(self, now: int) -> int:
        self._check_open()
        return retention.expire(self._ix, now, self.config.max_age)

    def update_config(self, config: StoreConfig) -> None:
        self._check_open()
        codec = framing.codec_for(config.compression)  # ValueError when unknown
        self.config = config
        self._sync.codec = codec  # for segments sealed from now on
        self._ix.name = config.name
        self._limited = retention.is_limited(config)
        retention.enforce_all(self._ix, config)

    # -----------------------------------------------------------------------------------------
    # Reading (see `reading`)

    def load(self, seq: int) -> StoredMessage | None:
        self._check_open()
        return self._reader.load(seq)

    def load_batch(self, start_seq: int, filters: tuple[str, ...] = (ALL,), max_msgs: int = 256,
                   max_bytes: int = 0) -> list[StoredMessage]:
        self._check_open()
        return self._reader.load_batch(start_seq, filters, max_msgs, max_bytes)

    def load_next(self, start_seq: int, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        return self._reader.load_next(start_seq, filters)

    def load_last(self, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        return self._reader.load_last(filters)

    def last_seq_for(self, subject: str) -> int:
        self._check_open()
        return self._reader.last_seq_for(subject)

    def num_pending(self, start_seq: int, filters: tuple[str, ...] = (ALL,),
                    last_per_subject: bool = False) -> int:
        self._check_open()
        return self._reader.num_pending(start_seq, filters, last_per_subject)

    @property
    def first_seq(self) -> int:
        ix = self._ix
        return ix.first if not ix.damaged else ix.floor()

    @property
    def last_seq(self) -> int:
        return self._ix.last_seq

    @property
    def msgs(self) -> int:
        return self._ix.msgs

    @property
    def removals(self) -> int:  # counted by the index (StoreIndex.delete_at / drop_whole)
        return self._ix.removals

    def msg_size(self, subject: str, hdr: bytes, data: bytes) -> int:
        return file_msg_size(subject_len(subject), len(hdr), len(data))

    def state(self) -> StoreState:
        self._check_open()
        return self._reader.state()

    def subjects(self, filter: str = ALL) -> dict[str, int]:
        self._check_open()
        return self._reader.subjects(filter)

    def deleted(self) -> list[int]:
        self._check_open()
        return self._reader.deleted()

    # -----------------------------------------------------------------------------------------
    # Durability (see `syncplan`)

    def begin_sync(self) -> SyncJob | None:
        self._check_open()
        return self._sync.begin_sync()

    def finish_sync(self, job: SyncJob) -> None:
        self._sync.finish_sync(job)

    # -----------------------------------------------------------------------------------------
    # Truncating (see `truncplan` and `storage.truncation`)

    def truncate(self, last_seq: int) -> None:
        """See `MessageStore.truncate`. Blocking, and durable already when it returns.

        Design: first sync everything, so the files hold exactly the state in memory. Then
        `storage.truncation` rewrites the segment holding the cut (a copy of its bytes up to
        the first record that must go, plus fresh markers) and removes the segments above,
        committing through an intent file so a crash leaves the store truncated or not. Last,
        every in-memory structure is rebuilt from the files as opening builds them: what the
        store serves after a truncate is, by construction, what a reopen would serve."""
        self._check_open()
        if not truncation_needed(self, last_seq):
            return
        error = self._sync.sync_everything()
        if error is not None:
            raise full_error(error, f"cannot truncate to {last_seq}: sync failed")
        ix = self._ix
        msgs, removals, damaged = ix.msgs, ix.removals, ix.damaged.ranges()
        try:  # nothing has changed yet if this fails
            segment, data, remove = truncplan.truncated_files(ix, self._dir, last_seq)
            truncation.prepare(self._dir, segment, data)
        except OSError as e:
            raise full_error(e, f"cannot truncate to {last_seq}") from e
        try:
            truncation.commit(self._dir, segment, remove, last_seq)
            truncation.finish(self._dir)
            self._reload()
        except (OSError, StoreError) as e:
            self._release()
            raise StoreError(f"truncating to {last_seq} did not complete ({e}); the store is "
                             "closed: opening it again finishes or undoes the truncation") from e
        self._keep_damage(damaged)
        ix = self._ix  # the reload built a new one
        ix.removals = removals + msgs - ix.msgs
        log.info("store %s: truncated to %d, %d messages removed", self.config.name, last_seq,
                 msgs - ix.msgs)

    def _reload(self) -> None:
        """Drop every in-memory structure and build them again from the files, as opening does,
        except that sealed segments' checksums are not verified again: they were when the store
        was opened, and every read checks its record."""
        self._release()
        self._init_state()
        self._open(verify=False)

    def _keep_damage(self, ranges: list[tuple[int, int]]) -> None:
        """Records found damaged by reads before a reload are not in any index: mark them
        again (a reopen finds them by their checksums)."""
        ix = self._ix
        for lo, hi in ranges:
            for seg, i in ix.live_in(lo, hi):
                ix.mark_damaged(seg, i)
        ix.drop_dead_front()

    # -----------------------------------------------------------------------------------------
    # Lifecycle

    def close(self) -> None:
        if self._closed:
            return
        try:
            error = self._sync.sync_everything()
            while error is None and self._sync.compress_pending():
                error = self._sync.sync_everything()  # segments sealed since the last sync
        finally:
            self._release()
        if error is not None:
            raise full_error(error, "close could not sync") from error

    def _release(self) -> None:
        self._closed = True
        for seg in self._ix.segs + self._sync.dead:
            if seg.file is not None:
                seg.file.close()
                seg.file = None
        self._io.close()

    def destroy(self) -> None:
        try:
            self.close()
        except StoreError as e:
            log.warning("store %s: close before destroy failed: %s", self.config.name, e)
        for name in os.listdir(self._dir):
            durable.unlink(os.path.join(self._dir, name))
        durable.rmdir(self._dir)

    # -----------------------------------------------------------------------------------------
    # Introspection, for tests and benchmarks (they look at the segments and the kept block)

    @property
    def _segs(self) -> list[Segment]:
        return self._ix.segs

    @property
    def _bases(self) -> list[int]:
        return self._ix.bases

    def _locate(self, seq: int) -> tuple[Segment, int] | None:
        return self._ix.locate(seq)

    @property
    def _block(self) -> object:
        return self._io.block

    @_block.setter
    def _block(self, value: None) -> None:
        self._io.block = value
