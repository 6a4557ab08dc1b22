"""FileStore: one stream's messages in segment files, with group commit and crash recovery.

Directory layout::

    store.meta        checked JSON (CRC envelope, `durable.write_checked`): format version, name
    00000001.seg      segment files, numbered in order; the highest is the active one
    00000001.idx      persisted index of a sealed segment (checked envelope, `storage.segindex`)
    truncate.intent   only between committing a truncation and finishing it (`storage.truncation`)

Segment file: a 52-byte header (magic, segment id, a random generation, the store's floor, next
sequence and last timestamp when the segment was created; CRC32) followed by records
`header | subject | headers | payload | crc32` (`storage.record`): messages (seq, timestamp, ttl),
erased messages, tombstones (DEL: u64 sequences) and purge markers (PURGE: "all below N are gone",
with the last sequence and timestamp so numbering survives an empty store, and sequences used by
`skip_msg` that no record holds: one marker per sync however many were skipped). A segment is
sealed when it reaches `segment_bytes` or `segment_msgs`; its index is written once its bytes are
durable, and its file is closed once they are.

Bytes: `state().bytes` and `max_bytes` count nats-server's file-store record size
(`store.file_msg_size`: 30 + subject + headers + payload, + 4 with headers), not this format's.

Index `.idx`: per message offset, size, timestamp and local subject id (plus the sequences when
they are not contiguous), a subject table with per-subject counts and first/last sequence, the
markers and ttls the segment holds, damaged stretches, and the CRC32 of the whole segment file it
describes (checked at open, so a bit flip in a sealed segment is found without parsing it).

Deletions: a removal marks the entry in memory and queues a tombstone; removals at the front only
advance the floor. At the next `begin_sync` the queued tombstones become DEL records and a changed
floor one PURGE record, in the active segment. A segment whose messages are all gone is unlinked
once it is at the front and those markers are durable. Sealed segments that are mostly deleted are
rewritten (compacted) inside a sync job, keeping the tombstones that still matter.

Recovery: read `store.meta` (refuse a damaged one), load each sealed segment's index (verify its
CRC and the segment's; rebuild it by scanning when missing or damaged), scan the active segment
record by record cutting a torn tail, then replay markers: the highest floor, tombstones, ttls.
Damaged records are never served: `load()` raises CorruptRecord and `state().damaged` lists them;
`load_next`/`load_last` raise CorruptRecord when the answer could lie in a damaged range, and
`remove(seq)` of a damaged sequence accepts its loss.

Truncation (`truncate`): sync everything, rewrite the segment holding the cut as a copy of its
bytes up to the first record that must go plus fresh markers (tombstones that lived above the cut,
a PURGE with the new last sequence), remove the segments above, all committed by one intent file
so a crash leaves the store truncated or not; then rebuild the in-memory state from the files.

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
  first tries to write the pending bytes and raises StoreFull while that fails (disk full).

Reads:

* The tail of the active segment stays in memory (`cache_bytes`, at least everything not yet
  durable), so reading recent messages costs no syscall.
* Elsewhere a read that continues the previous one (`load_next` walking a segment) fetches
  READ_AHEAD bytes, and the bytes of the last read are kept for the next: a record's bytes do
  not change while its segment keeps its header (a compaction writes a new one; an erase drops
  them). Every record is still checked (CRC, kind, seq) each time it is decoded.
* `load_batch` picks the entries from the segment index first (live flags, which local
  subjects match, sizes for `max_bytes`; segments whose subject summary has no live match are
  skipped), then reads them with one read per stretch of a segment and decodes them in one
  loop. A record that fails there is read again alone, as `load` would; if it still fails it is
  marked damaged and the batch ends before it (see `MessageStore.load_batch`).
* Filters are normalised once per distinct tuple (`subjects.normalized`).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import logging
import mmap
import os
import time
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from storage import durable, record, segindex, truncation
from storage.commit import Compaction, FileSyncJob, IndexWrite, Plan
from storage.durable import AppendFile, DamagedFile
from storage.ranges import RangeSet
from storage.record import (
    MAX_SUBJECT,
    READ_SLACK,
    SEGMENT_HEADER_SIZE,
    BadRecord,
    Damage,
    SegmentHeader,
)
from storage.segment import DAMAGED, DELETED, LIVE, Segment
from storage.store import (
    ALL,
    FILE_HDR_OVERHEAD,
    FILE_MSG_OVERHEAD,
    CorruptRecord,
    MessageStore,
    StoreConfig,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreState,
    SyncJob,
    file_msg_size,
    new_message,
    subject_len,
    truncation_needed,
)
from storage.subjects import matcher, normalize, normalized

log = logging.getLogger("storage")

META = "store.meta"
FORMAT_VERSION = 1
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

# Reading. A read that continues where the previous one ended (a reader walking a segment)
# fetches READ_AHEAD bytes at once; load_batch reads the records it returns from one segment
# with one read per stretch of at most BATCH_SPAN bytes, starting a new read where BATCH_GAP
# bytes or more lie between two of them (a sparse filter). A read kept for reuse is at most
# KEEP_BLOCK bytes.
READ_AHEAD = 64 << 10
BATCH_SPAN = 1 << 20
BATCH_GAP = 16 << 10
KEEP_BLOCK = 1 << 20
_HEADER_SIZE = record.HEADER_SIZE
_TTL_SIZE = record.TTL_SIZE
_CRC_SIZE = record.CRC_SIZE


@dataclass
class FileStoreOptions:
    segment_bytes: int = 8 << 20  # roll to a new segment past this many bytes
    segment_msgs: int = 1 << 20  # ... or this many messages
    cache_bytes: int = 4 << 20  # recent bytes of the active segment kept in memory for reads
    flush_bytes: int = 1 << 20  # buffered bytes written from the loop thread when no sync came
    retry_bytes: int = 64 << 20  # unsynced bytes kept in memory to rewrite after a failed sync
    verify_segments: bool = True  # check every sealed segment's CRC against its index at open
    compact_ratio: float = 0.5  # rewrite a sealed segment holding less than this share live
    max_readers: int = 64  # open read-only fds of sealed segments
    progress_every: int = 100  # log progress every this many segments while opening


def _generation() -> int:
    """A random, non-zero segment generation (zero means "header damaged")."""
    return (int.from_bytes(os.urandom(8), "little") >> 1) | 1


def _full_error(e: OSError, what: str) -> StoreError:
    if e.errno in _FULL_ERRNOS:
        return StoreFull(f"{what}: {e}")
    return StoreError(f"{what}: {e}")


class FileStore(MessageStore):
    """See the module docstring. Not thread-safe: one loop thread, plus `SyncJob.run` anywhere."""

    removals: int = 0  # MessageStore.removals: a plain attribute, counted in _delete_at/_drop_whole

    def __init__(self, directory: str, config: StoreConfig,
                 options: FileStoreOptions | None = None) -> None:
        self.config = config
        self._dir = os.path.abspath(directory)
        self._opt = options or FileStoreOptions()
        if not 0 < self._opt.segment_bytes < (1 << 31):
            raise ValueError("segment_bytes must be positive and below 2 GiB")
        self._init_state()
        self._open()

    def _init_state(self) -> None:
        """Every in-memory structure, empty (opening fills them from the files)."""
        # Subjects: global ids, names, and per-subject count / first (a lower bound) / last (exact
        # unless the id is in _stale_last, then an upper bound).
        self._sub_id: dict[str, int] = {}
        self._sub_names: list[str] = []
        self._sub_bytes: list[bytes] = []
        self._sub_extra = array("I")  # UTF-8 bytes beyond one per character
        self._any_extra = False
        self._s_count = array("Q")
        self._s_first = array("Q")
        self._s_last = array("Q")
        self._stale_last: set[int] = set()
        self._nsubj = 0
        self._match_cache: dict[tuple[str, ...], list] = {}
        # Messages.
        self._segs: list[Segment] = []
        self._bases: list[int] = []
        self._active: Segment | None = None
        self._last_seq = 0
        self._last_ts = 0
        self._first = 1  # the first live seq, or last_seq + 1
        self._msgs = 0
        self._bytes = 0
        self.removals = 0
        self._damaged = RangeSet()
        self._ttl_heap: list[tuple[int, int]] = []
        # Durability.
        self._pending_tombs = array("Q")
        self._written_floor = 0
        self._skip_pending = False  # skip_msg moved last_seq past every record: write a marker
        self._dirty: dict[int, Segment] = {}
        self._unindexed: list[Segment] = []
        self._dead: list[Segment] = []
        self._patches: list[tuple[str, int, bytes]] = []
        self._dir_ops = 0
        self._dir_synced = 0
        self._jobs: deque[FileSyncJob] = deque()
        self._degraded: OSError | None = None  # the last sync failed: writes must get through
        self._compact_check = False  # deletions happened: look for a segment to compact
        self._synced_seq = 0  # every message up to it was covered by a successful sync
        self._readers: OrderedDict[int, int] = OrderedDict()
        # The last bytes read from a file: (segment, its header, file offset, bytes). Bytes of a
        # record never change while its segment keeps that header (compaction gives a new one),
        # except when it is erased, which drops this.
        self._block: tuple[Segment, SegmentHeader, int, bytes] | None = None
        self._closed = False
        self._limited = False
        self._verify = self._opt.verify_segments  # check sealed segments' CRCs when loading
        self._set_limits(self.config)

    # -----------------------------------------------------------------------------------------
    # Paths and small helpers

    def _seg_path(self, seg_id: int) -> str:
        return os.path.join(self._dir, f"{seg_id:08d}.seg")

    def _idx_path(self, seg_id: int) -> str:
        return os.path.join(self._dir, f"{seg_id:08d}.idx")

    def _set_limits(self, config: StoreConfig) -> None:
        self._limited = (config.max_msgs > 0 or config.max_bytes > 0
                         or config.max_msgs_per_subject > 0)

    def _intern(self, subject: str) -> int:
        gid = self._sub_id.get(subject)
        if gid is not None:
            return gid
        raw = subject.encode()
        if len(raw) > MAX_SUBJECT:
            raise StoreError(f"subject longer than {MAX_SUBJECT} bytes")
        gid = len(self._sub_names)
        self._sub_id[subject] = gid
        self._sub_names.append(subject)
        self._sub_bytes.append(raw)
        extra = len(raw) - len(subject)
        self._sub_extra.append(extra)
        if extra:
            self._any_extra = True
        self._s_count.append(0)
        self._s_first.append(0)
        self._s_last.append(0)
        return gid

    def _floor(self) -> int:
        """The first sequence not known to be gone: the first live or damaged one."""
        d = self._damaged.first()
        return self._first if d is None or d > self._first else d

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    # -----------------------------------------------------------------------------------------
    # Opening and recovery

    def _open(self) -> None:
        started = time.monotonic()
        durable.makedirs(self._dir)
        self._finish_truncation()
        seg_ids = self._tidy_directory()
        self._load_meta(bool(seg_ids))
        segs = self._load_segments(seg_ids)
        self._assemble(segs)
        durable.fsync_dir(self._dir)  # whatever recovery serves from now on is durable
        self._dir_synced = self._dir_ops
        elapsed = time.monotonic() - started
        log.info("store %s opened: %d messages in %d segments in %.3fs", self.config.name,
                 self._msgs, len(self._segs), elapsed)

    def _finish_truncation(self) -> None:
        """A truncation that was committed but not finished when the process died."""
        last_seq = truncation.finish(self._dir)
        if last_seq is not None:
            log.warning("store %s: finished truncating to %d after a crash", self.config.name,
                        last_seq)

    def _tidy_directory(self) -> list[int]:
        seg_ids, stale = [], []
        names = set(os.listdir(self._dir))
        for name in names:
            stem, _, ext = name.partition(".")
            if ext.endswith("tmp"):
                stale.append(name)
            elif ext == "seg" and stem.isdigit():
                seg_ids.append(int(stem))
            elif ext == "idx" and stem.isdigit() and f"{stem}.seg" not in names:
                stale.append(name)
        for name in stale:
            log.info("store %s: removing leftover %s", self.config.name, name)
            durable.unlink(os.path.join(self._dir, name))
        return sorted(seg_ids)

    def _load_meta(self, have_segments: bool) -> None:
        path = os.path.join(self._dir, META)
        try:
            payload = durable.read_checked(path)
        except FileNotFoundError:
            if have_segments:
                raise StoreError(f"{path} is missing but {self._dir} holds segments; refusing to "
                                 "guess what they are") from None
            meta = {"version": FORMAT_VERSION, "name": self.config.name}
            durable.write_checked(path, json.dumps(meta).encode())
            return
        except DamagedFile as e:
            log.error("store %s: %s; refusing to open", self.config.name, e)
            raise
        try:
            meta = json.loads(payload)
            version = meta["version"]
        except (ValueError, KeyError, TypeError) as e:
            raise DamagedFile(path, f"unreadable contents ({e})") from e
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: unsupported store format version {version}")

    def _load_segments(self, seg_ids: list[int]) -> list[Segment]:
        segs = []
        every = max(1, self._opt.progress_every)
        for k, seg_id in enumerate(seg_ids):
            last = k == len(seg_ids) - 1
            seg = self._load_segment(seg_id, last)
            if seg is not None:
                segs.append(seg)
            if (k + 1) % every == 0:
                log.info("store %s: loaded %d of %d segments", self.config.name, k + 1,
                         len(seg_ids))
        return segs

    def _load_segment(self, seg_id: int, last: bool) -> Segment | None:
        path = self._seg_path(seg_id)
        idx = self._idx_path(seg_id)
        if last and not os.path.exists(idx):
            return self._scan_segment(seg_id, path, active=True)
        seg = self._load_indexed(seg_id, path, idx)
        if seg is not None:
            return seg
        seg = self._scan_segment(seg_id, path, active=False)
        if seg is not None:
            self._write_index_now(seg)
        return seg

    def _load_indexed(self, seg_id: int, path: str, idx: str) -> Segment | None:
        name = self.config.name
        try:
            seg, file_crc = segindex.decode(durable.read_checked(idx), seg_id, path)
        except FileNotFoundError:
            log.warning("store %s: segment %d has no index; rebuilding it", name, seg_id)
            return None
        except (DamagedFile, ValueError) as e:
            log.warning("store %s: index of segment %d unusable (%s); rebuilding it", name,
                        seg_id, e)
            return None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = record.decode_segment_header(f.read(SEGMENT_HEADER_SIZE))
            if header is None or header != seg.header or size != seg.size:
                log.warning("store %s: segment %d does not match its index (size %d, indexed "
                            "%d); rescanning it", name, seg_id, size, seg.size)
                return None
            if self._verify and size:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                    crc = zlib.crc32(view)
                if crc != file_crc:
                    log.error("store %s: segment %d fails its checksum; rescanning it to find "
                              "the damage", name, seg_id)
                    return None
        return seg

    def _scan_segment(self, seg_id: int, path: str, active: bool) -> Segment | None:
        """Build a segment's index by reading every record. For the active segment a torn tail
        is cut; elsewhere damaged bytes become damaged ranges."""
        name = self.config.name
        with open(path, "rb") as f:
            buf = f.read()
        header = record.decode_segment_header(buf)
        if header is None:
            if len(buf) > 0:
                log.error("store %s: segment %d has a damaged header", name, seg_id)
            header = SegmentHeader(seg_id, 0, 0, 0, 0)  # generation 0: unknown, fixed later
        seg = Segment(seg_id, path, header)
        seg.lmap = None
        seg.names = []
        names: dict[str, int] = {}
        end = len(buf)
        gap_lo: int | None = None
        in_gap = False
        start = SEGMENT_HEADER_SIZE if header.generation else 0
        for item in record.scan(buf, min(start, end)):
            if isinstance(item, Damage):
                if item.tail and active:
                    log.warning("store %s: cutting a torn tail of %d bytes from segment %d",
                                name, end - item.start, seg_id)
                    end = item.start
                    break
                log.error("store %s: segment %d: %d damaged bytes at offset %d", name, seg_id,
                          item.end - item.start, item.start)
                if not in_gap:
                    in_gap, gap_lo = True, (seg.max_seq or None)
                continue
            if in_gap and item.kind in (record.KIND_MSG, record.KIND_ERASED):
                seg.gaps.append((gap_lo, item.seq))
                in_gap = False
            self._scan_record(seg, names, buf, item)
        if in_gap:
            seg.gaps.append((gap_lo, None))
        if active and not header.generation and not seg.seqs and not seg.gaps:
            # A segment whose creation was never synced: nothing in it was ever durable.
            log.info("store %s: removing segment %d: created but never synced", name, seg_id)
            durable.unlink(path)
            return None
        seg.size = end
        seg.sealed = not active
        seg.recompute_live()
        self._make_durable(seg, path, end, len(buf), active)
        return seg

    def _make_durable(self, seg: Segment, path: str, end: int, size: int, active: bool) -> None:
        """What recovery serves must be durable (it may have been written but never synced)."""
        f = AppendFile.open(path, end)
        if end != size:
            f.cut(end)
        else:
            durable.fdatasync(f.fd, path, end)
        if active and seg.header.generation:
            seg.file = f
        else:
            f.close()

    @staticmethod
    def _scan_record(seg: Segment, names: dict[str, int], buf: bytes,
                     rec: record.Record) -> None:
        kind = rec.kind
        if kind == record.KIND_MSG:
            subject = record.subject_of(buf, rec)
            local = names.get(subject)
            if local is None:
                local = seg._new_local(0, rec.seq)
                names[subject] = local
                seg.names.append(subject)
            seg.append_entry(rec.seq, rec.offset, rec.size, rec.ts, local,
                             1 if rec.hdr_len else 0)
            if rec.ttl:
                seg.ttl_seqs.append(rec.seq)
                seg.ttl_exps.append(rec.ts + rec.ttl)
        elif kind == record.KIND_ERASED:
            if rec.seq > seg.max_seq:
                seg.max_seq, seg.max_seq_ts = rec.seq, rec.ts
        elif kind == record.KIND_DEL:
            seg.tombs.extend(record.del_seqs(buf, rec))
        elif kind == record.KIND_PURGE:
            floor, last_seq, last_ts = record.purge_info(buf, rec)
            seg.mark_floor = max(seg.mark_floor, floor)
            if last_seq >= seg.mark_last_seq:
                seg.mark_last_seq, seg.mark_last_ts = last_seq, last_ts

    def _write_index_now(self, seg: Segment) -> None:
        if not seg.header.generation:
            return  # a segment with a damaged header is rescanned at every open
        head, blobs = segindex.head_and_blobs(seg, list(seg.names or []))
        try:
            IndexWrite(seg.path, self._idx_path(seg.id), seg.size, head, blobs).run()
            seg.indexed = True
        except OSError as e:
            log.warning("store %s: could not write the index of segment %d: %s",
                        self.config.name, seg.id, e)

    def _assemble(self, segs: list[Segment]) -> None:
        """Turn loaded segments into the store's state: bounds, deletions, damage, subjects."""
        floor, last_seq, last_ts = self._bounds(segs)
        self._fix_bases(segs, floor)
        self._segs = segs
        self._bases = [s.base for s in segs]
        self._last_seq, self._last_ts = last_seq, last_ts
        self._apply_deletions(segs, floor)
        self._damaged = self._resolve_damage(segs, floor, last_seq)
        for seg in segs:
            if DELETED in seg.flags or DAMAGED in seg.flags:
                seg.recompute_live()
        self._build_subjects(segs)
        self._build_ttls(segs)
        self._msgs = sum(s.live for s in segs)
        self._bytes = sum(s.live_bytes for s in segs)
        self._first = self._scan_first()
        self._written_floor = floor
        self._synced_seq = last_seq  # recovery made everything it serves durable
        if segs and segs[-1].file is not None:
            self._active = segs[-1]
        else:
            if segs:
                segs[-1].sealed = True
            self._new_segment()
        for seg in self._segs:
            if seg.sealed and not seg.indexed and seg.header.generation:
                self._queue_index(seg)
        self._drop_dead_front()
        self._enforce_all_limits()

    def _bounds(self, segs: list[Segment]) -> tuple[int, int, int]:
        if not segs:
            first = max(1, self.config.first_seq)
            return first, first - 1, 0
        floor = max(max(s.header.floor, s.mark_floor) for s in segs)
        candidates = [(0, 0)]
        for s in segs:
            if s.header.generation:
                candidates.append((s.header.next_seq - 1, s.header.last_ts))
            candidates.append((s.mark_last_seq, s.mark_last_ts))
            candidates.append((s.max_seq, s.max_seq_ts))
        last_seq, last_ts = max(candidates)
        return max(floor, 1), last_seq, last_ts

    @staticmethod
    def _fix_bases(segs: list[Segment], floor: int) -> None:
        """Segments with a damaged header do not know their base: take it from their records or
        from the previous segment. Bases must never decrease."""
        prev_base, prev_max = 0, floor - 1
        for seg in segs:
            if not seg.header.generation:
                seg.base = seg.seqs[0] if seg.seqs else prev_max + 1
            seg.base = max(seg.base, prev_base)
            prev_base = seg.base
            prev_max = max(prev_max, seg.max_seq, seg.base - 1)

    def _apply_deletions(self, segs: list[Segment], floor: int) -> None:
        for seg in segs:
            seqs = seg.seqs
            if seqs and seqs[0] < floor:
                j = seg.lower(floor)
                seg.flags[:j] = bytes([DELETED]) * j
        for seg in segs:
            for seq in seg.tombs:
                if seq < floor:
                    continue
                loc = self._locate(seq)
                if loc is not None:
                    loc[0].flags[loc[1]] = DELETED

    def _resolve_damage(self, segs: list[Segment], floor: int, last_seq: int) -> RangeSet:
        damaged = RangeSet()
        prev_max = floor - 1
        for k, seg in enumerate(segs):
            if seg.header.generation:
                prev_max = max(prev_max, seg.base - 1)
            for lo, hi in seg.gaps:
                low = prev_max if lo is None else lo
                if hi is None:
                    hi = segs[k + 1].base if k + 1 < len(segs) else last_seq + 1
                damaged.add(low + 1, hi - 1)
            prev_max = max(prev_max, seg.max_seq)
        damaged.clip(floor, last_seq)
        if not damaged:
            return damaged
        for seg in segs:  # tombstoned sequences are gone, not damaged
            for seq in seg.tombs:
                if seq in damaged:
                    damaged.remove(seq, seq)
        for lo, hi in damaged.ranges():  # entries inside a damaged range are not served
            for seq in range(lo, hi + 1):
                loc = self._locate(seq)
                if loc is not None and loc[0].flags[loc[1]] == LIVE:
                    loc[0].flags[loc[1]] = DAMAGED
        for lo, hi in damaged.ranges():
            log.error("store %s: sequences %d..%d are damaged and will not be served",
                      self.config.name, lo, hi)
        return damaged

    def _build_subjects(self, segs: list[Segment]) -> None:
        for seg in segs:
            if seg.names is not None:
                seg.lsub_gid = array("I", [self._intern(n) for n in seg.names])
                seg.names = None
                seg.lmap = None
        counts, first, last = self._s_count, self._s_first, self._s_last
        for seg in segs:
            for local, gid in enumerate(seg.lsub_gid):
                c = seg.lsub_live[local]
                if not c:
                    continue
                if not counts[gid]:
                    first[gid] = seg.lsub_first[local]
                counts[gid] += c
                last[gid] = max(last[gid], seg.lsub_last[local])
        self._nsubj = 0
        for gid, c in enumerate(counts):
            if not c:
                continue
            self._nsubj += 1
            loc = self._locate(last[gid])
            if loc is None or loc[0].flags[loc[1]] != LIVE:
                self._stale_last.add(gid)
        for seg in segs:
            if seg.file is not None:
                seg.local(0)  # the active segment keeps its global -> local map built

    def _build_ttls(self, segs: list[Segment]) -> None:
        heap = []
        for seg in segs:
            for seq, exp in zip(seg.ttl_seqs, seg.ttl_exps, strict=True):
                i = seg.find(seq)
                if i >= 0 and seg.flags[i] == LIVE:
                    heap.append((exp, seq))
        heapq.heapify(heap)
        self._ttl_heap = heap

    def _scan_first(self) -> int:
        for seg in self._segs:
            if seg.live:
                return seg.seqs[seg.flags.find(LIVE)]
        return self._last_seq + 1

    # -----------------------------------------------------------------------------------------
    # Segments: creating, rolling, dropping

    def _new_segment(self) -> Segment:
        seg_id = self._segs[-1].id + 1 if self._segs else 1
        path = self._seg_path(seg_id)
        header = SegmentHeader(seg_id, _generation(), self._floor(), self._last_seq + 1,
                               self._last_ts)
        f = AppendFile.create(path)  # raises OSError with nothing changed
        seg = Segment(seg_id, path, header)
        seg.file = f
        seg.size = f.append(record.encode_segment_header(header)) + SEGMENT_HEADER_SIZE
        self._segs.append(seg)
        self._bases.append(seg.base)
        self._active = seg
        self._dirty[seg_id] = seg
        self._dir_ops += 1
        self._written_floor = max(self._written_floor, header.floor)
        return seg

    def _roll(self) -> Segment:
        old = self._active
        try:
            new = self._new_segment()
        except OSError as e:
            raise _full_error(e, "cannot create a segment") from e
        old.sealed = True
        old.match_cache.clear()
        f = old.file
        if f.durable == f.length and not f.inflight and old.id not in self._dirty:
            # Already durable: no job will finish it, so release its fd and window now (a job
            # that covers it, pending or running, closes it in _finalize instead).
            f.close()
            old.file = None
        self._queue_index(old)
        self._drop_dead_front()
        return new

    def _queue_index(self, seg: Segment) -> None:
        if not seg.index_queued:
            seg.index_queued = True
            self._unindexed.append(seg)

    def _drop_dead_front(self) -> None:
        """Unlink (at the next sync) front segments without live messages. The active segment
        stays, and so does a segment with damage in its range (it awaits repair)."""
        segs = self._segs
        while len(segs) > 1 and not segs[0].live:
            if self._damaged and self._damaged.first() < self._bases[1]:
                return
            seg = segs.pop(0)
            self._bases.pop(0)
            self._bury(seg)

    def _bury(self, seg: Segment) -> None:
        self._dead.append(seg)
        self._dirty.pop(seg.id, None)
        if seg in self._unindexed:
            self._unindexed.remove(seg)
        fd = self._readers.pop(seg.id, None)
        if fd is not None:
            os.close(fd)

    # -----------------------------------------------------------------------------------------
    # Writing

    def store_msg(self, subject: str, hdr: bytes, data: bytes, ts: int, ttl: int = 0) -> int:
        if self._degraded is not None or self._closed:
            self._check_open()
            self._get_writes_through()
        seq = self._last_seq + 1
        gid = self._sub_id.get(subject)
        if gid is None:
            gid = self._intern(subject)
        rec = record.encode_msg(seq, ts, ttl, self._sub_bytes[gid], hdr, data)
        seg = self._active
        f = seg.file
        if (f.length + len(rec) > self._opt.segment_bytes and seg.seqs) or \
                len(seg.seqs) >= self._opt.segment_msgs:
            seg = self._roll()
            f = seg.file
        elif f.length - f.handed >= self._opt.flush_bytes:
            self._flush(seg)
        off = f.append(rec)
        seg.size = f.length
        size = FILE_MSG_OVERHEAD + len(self._sub_bytes[gid]) + len(hdr) + len(data)
        if hdr:  # file_msg_size, inlined
            size += FILE_HDR_OVERHEAD
            seg.add(seq, off, size, ts, gid, 1)
        else:
            seg.add(seq, off, size, ts, gid, 0)
        self._dirty[seg.id] = seg
        self._skip_pending = False  # this record carries the numbering
        self._last_seq = seq
        self._last_ts = ts
        self._msgs += 1
        self._bytes += size
        count = self._s_count[gid]
        if not count:
            self._s_first[gid] = seq
            self._nsubj += 1
        self._s_count[gid] = count + 1
        self._s_last[gid] = seq
        if self._stale_last:
            self._stale_last.discard(gid)
        if ttl:
            heapq.heappush(self._ttl_heap, (ts + ttl, seq))
            seg.ttl_seqs.append(seq)
            seg.ttl_exps.append(ts + ttl)
        if self._limited:
            self._enforce_after_store(gid)
        return seq

    def _flush(self, seg: Segment) -> None:
        """Write buffered bytes from the loop thread (no sync came for a while)."""
        try:
            seg.file.flush()
        except OSError as e:
            raise _full_error(e, "cannot write") from e
        seg.file.trim(self._opt.cache_bytes, self._opt.retry_bytes)

    def _get_writes_through(self) -> None:
        """After a failed sync: store only once buffered bytes can be written again (so a full
        disk refuses publishes at once). While a retry runs, its outcome decides instead."""
        self._reap()
        if self._degraded is None or any(not job.done.is_set() for job in self._jobs):
            return
        for seg in sorted(self._dirty.values(), key=lambda s: s.id):
            if seg.file is not None:
                self._flush(seg)
        self._degraded = None

    def skip_msg(self, ts: int) -> int:
        self._check_open()
        seq = self._last_seq + 1
        self._last_seq = seq
        self._last_ts = ts
        if self._first == seq:  # nothing live: the front moves past it
            self._first = seq + 1
        self._skip_pending = True
        return seq

    def skip_msgs(self, first_seq: int) -> None:
        self._check_open()
        if first_seq <= self._last_seq:
            raise StoreError(f"skip_msgs({first_seq}) would move back from last sequence "
                             f"{self._last_seq}")
        self._purge_all()
        self._last_seq = first_seq - 1
        self._first = first_seq

    def remove(self, seq: int, erase: bool = False) -> bool:
        self._check_open()
        loc = self._locate(seq)
        if loc is None:
            if seq in self._damaged:  # accept the loss of a damaged record: it is gone now
                self._forget_damage(seq, seq)
                return True
            return False
        seg, i = loc
        flag = seg.flags[i]
        if flag == DELETED:
            return False
        if flag == DAMAGED:
            seg.flags[i] = DELETED
            self._forget_damage(seq, seq)
            return True
        if erase:
            self._erase(seg, i)
        self._delete_at(seg, i)
        self._drop_dead_front()
        return True

    def _forget_damage(self, lo: int, hi: int) -> None:
        """Accept that damaged sequences in [lo, hi] are gone (tombstones make it last)."""
        for a, b in self._damaged.ranges():
            if b >= lo and a <= hi:
                self._pending_tombs.extend(range(max(a, lo), min(b, hi) + 1))
        self._damaged.remove(lo, hi)
        self._drop_dead_front()

    def _erase(self, seg: Segment, i: int) -> None:
        if seg.compacting:  # the offsets change: erase in the new file once it is in place
            seg.erase_later.append(seg.seqs[i])
            return
        off = seg.offs[i]
        try:
            raw = self._record_bytes(seg, i)
            rec = record.record_at(raw, 0, len(raw))
        except OSError:
            rec = None
        if rec is None or rec.kind != record.KIND_MSG:
            return  # damaged already: nothing readable to overwrite
        self._block = None  # it may hold the bytes being erased
        new = record.erased(raw[:rec.length])
        if seg.file is None or seg.file.patch(off, new):
            self._patches.append((seg.path, off, new))
            if seg.sealed:  # its index's file CRC changes: write the index again after the patch
                seg.indexed = False
                self._queue_index(seg)

    def _delete_at(self, seg: Segment, i: int, flag: int = DELETED) -> None:
        """Mark entry `i` deleted (or damaged) and update every count. The caller drops dead
        front segments afterwards."""
        seq = seg.seqs[i]
        seg.flags[i] = flag
        size = seg.sizes[i]
        seg.live -= 1
        seg.live_bytes -= size
        local = seg.sids[i]
        seg.lsub_live[local] -= 1
        gid = seg.lsub_gid[local]
        count = self._s_count[gid] - 1
        self._s_count[gid] = count
        if not count:
            self._nsubj -= 1
            self._stale_last.discard(gid)
        elif seq == self._s_last[gid]:
            self._stale_last.add(gid)
        self._msgs -= 1
        self._bytes -= size
        self.removals += 1
        self._compact_check = True
        front = seq == self._first
        if front:
            self._advance_first(seg, i)
        if flag == DELETED and (not front or self._damaged):
            self._pending_tombs.append(seq)

    def _seg_pos(self, seg: Segment) -> int:
        k = bisect_left(self._bases, seg.base)
        while self._segs[k] is not seg:
            k += 1
        return k

    def _advance_first(self, seg: Segment, i: int) -> None:
        j = seg.flags.find(LIVE, i + 1)
        if j >= 0:
            self._first = seg.seqs[j]
            return
        for nxt in self._segs[self._seg_pos(seg) + 1:]:
            if nxt.live:
                self._first = nxt.seqs[nxt.flags.find(LIVE)]
                return
        self._first = self._last_seq + 1

    def _drop_whole(self, seg: Segment) -> int:
        """Delete every live message of a segment at once, using its per-subject counts."""
        n = seg.live
        if not n:
            return 0
        front = self._first >= seg.base
        if not front or self._damaged:
            self._pending_tombs.extend(seg.seqs[i] for i in seg.live_entries())
        last_in_seg = seg.last_entry_seq()
        for local, gid in enumerate(seg.lsub_gid):
            c = seg.lsub_live[local]
            if not c:
                continue
            seg.lsub_live[local] = 0
            count = self._s_count[gid] - c
            self._s_count[gid] = count
            if not count:
                self._nsubj -= 1
                self._stale_last.discard(gid)
            elif seg.base <= self._s_last[gid] <= last_in_seg:
                self._stale_last.add(gid)
        self._msgs -= n
        self._bytes -= seg.live_bytes
        self.removals += n
        seg.live = 0
        seg.live_bytes = 0
        seg.flags = seg.flags.replace(bytes([LIVE]), bytes([DELETED]))
        if front:
            self._advance_first(seg, len(seg.seqs) - 1)
        return n

    def purge(self, subject: str | None = None, seq: int = 0, keep: int = 0) -> int:
        self._check_open()
        norm = normalize(subject)
        if norm is None and not seq and keep <= 0:
            return self._purge_all()
        limit = None
        if keep > 0:
            total = self._msgs if norm is None else sum(
                self._s_count[g] for g in self._matching_gids(norm))
            if keep >= total:
                return 0
            limit = total - keep
        below = seq if seq > 0 else None
        if norm is None and below is not None and self._damaged:
            self._forget_damage(0, below - 1)
        removed = self._remove_matching(norm, below, limit)
        self._drop_dead_front()
        return removed

    def _purge_all(self) -> int:
        n = self._msgs
        if self._damaged:
            self._damaged = RangeSet()
        for seg in self._segs:
            self._drop_whole(seg)
        self._pending_tombs = array("Q")
        self._first = self._last_seq + 1
        self._drop_dead_front()
        return n

    def _remove_matching(self, norm: tuple[str, ...] | None, below: int | None,
                         limit: int | None) -> int:
        """Remove live messages matching `norm`, oldest first, with seq < below, at most limit."""
        removed = 0
        gids = None if norm is None else self._matching_gids(norm)
        for seg in list(self._segs):
            if limit is not None and removed >= limit:
                break
            if below is not None and seg.base >= below:
                break
            if not seg.live:
                continue
            if gids is None:
                locals_all = True
                wanted = None
            else:
                wanted = seg.live_locals(norm, gids.__contains__)
                if not any(seg.lsub_live[x] for x in wanted):
                    continue
                locals_all = all(x in wanted for x in range(len(seg.lsub_gid))
                                 if seg.lsub_live[x])
            whole = (locals_all and (below is None or seg.last_entry_seq() < below)
                     and (limit is None or seg.live <= limit - removed))
            if whole:
                removed += self._drop_whole(seg)
                continue
            removed += self._remove_in_segment(seg, wanted, below,
                                               None if limit is None else limit - removed)
        return removed

    def _remove_in_segment(self, seg: Segment, wanted: frozenset[int] | None,
                           below: int | None, limit: int | None) -> int:
        removed = 0
        seqs, sids, flags = seg.seqs, seg.sids, seg.flags
        for i in seg.live_entries():
            if below is not None and seqs[i] >= below:
                break
            if limit is not None and removed >= limit:
                break
            if flags[i] != LIVE or (wanted is not None and sids[i] not in wanted):
                continue
            self._delete_at(seg, i)
            removed += 1
        return removed

    def expire(self, now: int) -> int:
        self._check_open()
        removed = 0
        if self.config.max_age > 0:
            removed += self._expire_age(now - self.config.max_age)
        heap = self._ttl_heap
        while heap and heap[0][0] <= now:
            _, seq = heapq.heappop(heap)
            loc = self._locate(seq)
            if loc is not None and loc[0].flags[loc[1]] == LIVE:
                self._delete_at(*loc)
                removed += 1
        self._drop_dead_front()
        return removed

    def _expire_age(self, cutoff: int) -> int:
        """Remove every live message with ts <= cutoff."""
        removed = 0
        for seg in list(self._segs):
            if not seg.live or seg.min_ts > cutoff:
                continue
            if seg.max_ts <= cutoff:
                removed += self._drop_whole(seg)
                continue
            tss = seg.tss
            if seg.ts_sorted:
                end = bisect_right(tss, cutoff)
                for i in range(seg.expire_pos, end):
                    if seg.flags[i] == LIVE:
                        self._delete_at(seg, i)
                        removed += 1
                seg.expire_pos = end
                seg.min_ts = tss[end] if end < len(tss) else seg.min_ts
                continue
            min_ts = 1 << 63
            for i in seg.live_entries():
                if tss[i] <= cutoff:
                    self._delete_at(seg, i)
                    removed += 1
                elif tss[i] < min_ts:
                    min_ts = tss[i]
            seg.min_ts = min_ts
        return removed

    def update_config(self, config: StoreConfig) -> None:
        self._check_open()
        self.config = config
        self._set_limits(config)
        self._enforce_all_limits()

    # Limits

    def _enforce_after_store(self, gid: int) -> None:
        cfg = self.config
        mps = cfg.max_msgs_per_subject
        if mps > 0 and self._s_count[gid] > mps:
            self._trim_subject(gid, mps)
        if cfg.max_msgs > 0 and self._msgs > cfg.max_msgs:
            self._drop_front(count=self._msgs - cfg.max_msgs)
        if cfg.max_bytes > 0 and self._bytes > cfg.max_bytes:
            self._drop_front(max_bytes=cfg.max_bytes)
        self._drop_dead_front()

    def _enforce_all_limits(self) -> None:
        cfg = self.config
        if cfg.max_msgs_per_subject > 0:
            for gid, count in enumerate(self._s_count):
                if count > cfg.max_msgs_per_subject:
                    self._trim_subject(gid, cfg.max_msgs_per_subject)
        if cfg.max_msgs > 0 and self._msgs > cfg.max_msgs:
            self._drop_front(count=self._msgs - cfg.max_msgs)
        if cfg.max_bytes > 0 and self._bytes > cfg.max_bytes:
            self._drop_front(max_bytes=cfg.max_bytes)
        self._drop_dead_front()

    def _drop_front(self, count: int = 0, max_bytes: int = 0) -> None:
        """Drop the oldest messages: `count` of them, or until bytes <= max_bytes. Whole
        segments go at once."""
        for seg in list(self._segs):
            if (count <= 0 and not max_bytes) or (max_bytes and self._bytes <= max_bytes):
                return
            if not seg.live:
                continue
            if (count and seg.live <= count) or \
                    (max_bytes and self._bytes - seg.live_bytes >= max_bytes):
                count -= self._drop_whole(seg)
                continue
            flags = seg.flags
            i = flags.find(LIVE)
            while i >= 0:
                self._delete_at(seg, i)
                count -= 1
                if count <= 0 and not max_bytes:
                    return
                if max_bytes and self._bytes <= max_bytes:
                    return
                i = flags.find(LIVE, i + 1)

    def _trim_subject(self, gid: int, limit: int) -> None:
        while self._s_count[gid] > limit:
            loc = self._first_of(gid)
            if loc is None:  # pragma: no cover - counts and entries disagree
                log.error("store %s: subject count out of step", self.config.name)
                return
            seg, i = loc
            seq = seg.seqs[i]
            self._delete_at(seg, i)
            if self._s_count[gid] == 1 and gid not in self._stale_last:
                self._s_first[gid] = self._s_last[gid]
            else:
                self._s_first[gid] = seq + 1

    def _first_of(self, gid: int) -> tuple[Segment, int] | None:
        """The oldest live message of a subject, starting from its lower bound."""
        lower = self._s_first[gid]
        loc = self._locate(lower)
        if loc is not None:
            seg, i = loc
            if seg.flags[i] == LIVE and seg.lsub_gid[seg.sids[i]] == gid:
                return loc
        k = max(0, bisect_right(self._bases, lower) - 1)
        for seg in self._segs[k:]:
            local = seg.local(gid)
            if local is None or not seg.lsub_live[local]:
                continue
            i = self._find_local(seg, local, seg.lower(lower))
            if i >= 0:
                self._s_first[gid] = seg.seqs[i]
                return seg, i
        return None

    @staticmethod
    def _find_local(seg: Segment, local: int, start: int) -> int:
        """The first live entry at or after `start` with this local subject id, or -1."""
        sids, flags = seg.sids, seg.flags
        i = start
        while True:
            try:
                i = sids.index(local, i)
            except ValueError:
                return -1
            if flags[i] == LIVE:
                return i
            i += 1

    # -----------------------------------------------------------------------------------------
    # Reading

    def _locate(self, seq: int) -> tuple[Segment, int] | None:
        """The segment and entry index holding `seq` (in any state), or None."""
        k = bisect_right(self._bases, seq) - 1
        if k < 0:
            return None
        seg = self._segs[k]
        i = seg.find(seq)
        return (seg, i) if i >= 0 else None

    def _reader(self, seg: Segment) -> int:
        fd = self._readers.get(seg.id)
        if fd is not None:
            self._readers.move_to_end(seg.id)
            return fd
        fd = durable.open_ro(seg.path)
        self._readers[seg.id] = fd
        if len(self._readers) > self._opt.max_readers:
            _, old = self._readers.popitem(last=False)
            os.close(old)
        return fd

    def _read(self, seg: Segment, off: int, n: int) -> bytes:
        if seg.file is not None:
            return seg.file.read(off, n)
        if seg.pin_fd is not None:  # being compacted: the old file, whatever its name holds
            return os.pread(seg.pin_fd, n, off)
        return os.pread(self._reader(seg), n, off)

    def _record_bytes(self, seg: Segment, i: int) -> bytes:
        off = seg.offs[i]
        buf = self._read(seg, off, seg.sizes[i] + READ_SLACK)
        rec = record.header_at(buf, 0, 1 << 62)
        if rec is not None and len(buf) < rec.length < (1 << 32):
            buf = self._read(seg, off, rec.length)  # multi-byte subject characters
        return buf

    def _fetch(self, seg: Segment, off: int, n: int, ahead: bool = True) -> tuple[bytes, int]:
        """Bytes holding file bytes [off, off+n) of `seg` (fewer at its end), and where they
        start in them. From the tail window, the kept block, or one read, which fetches
        READ_AHEAD bytes when `ahead` and it continues the previous one."""
        blk = self._block
        sequential = False
        if blk is not None and blk[0] is seg and blk[1] is seg.header:
            lo, buf = blk[2], blk[3]
            if lo <= off and (off + n <= lo + len(buf) or lo + len(buf) >= seg.size):
                return buf, off - lo
            sequential = ahead and lo <= off <= lo + len(buf) + BATCH_GAP
        f = seg.file
        if f is not None and off >= f.win_start:
            return f.read(off, n), 0
        buf = self._read(seg, off, max(n, READ_AHEAD) if sequential else n)
        if len(buf) <= KEEP_BLOCK:
            self._block = (seg, seg.header, off, buf)
        return buf, 0

    def _decode(self, seg: Segment, i: int) -> StoredMessage:
        seq = seg.seqs[i]
        gid = seg.lsub_gid[seg.sids[i]]
        name, raw = self._sub_names[gid], self._sub_bytes[gid]
        try:
            buf, pos = self._fetch(seg, seg.offs[i], seg.sizes[i] + READ_SLACK)
            return record.decode_at(buf, pos, seq, name, raw)
        except (BadRecord, OSError):
            pass
        # Read it again on its own, whole and fresh (not from the kept block), to be sure.
        self._block = None
        try:
            return record.decode_at(self._record_bytes(seg, i), 0, seq, name, raw)
        except (BadRecord, OSError) as e:
            detail = str(e)
        log.error("store %s: message %d in segment %d fails verification (%s); not serving it",
                  self.config.name, seq, seg.id, detail)
        self._delete_at(seg, i, DAMAGED)
        self._damaged.add(seq, seq)
        raise CorruptRecord(seq, detail)

    def load(self, seq: int) -> StoredMessage | None:
        self._check_open()
        loc = self._locate(seq)
        if loc is None:
            if self._damaged and seq in self._damaged:
                raise CorruptRecord(seq)
            return None
        seg, i = loc
        flag = seg.flags[i]
        if flag == LIVE:
            return self._decode(seg, i)
        if flag == DAMAGED:
            raise CorruptRecord(seq)
        return None

    def load_batch(self, start_seq: int, filters: tuple[str, ...] = (ALL,), max_msgs: int = 256,
                   max_bytes: int = 0) -> list[StoredMessage]:
        self._check_open()
        out: list[StoredMessage] = []
        start = max(start_seq, self._floor())
        if max_msgs <= 0 or start > self._last_seq:
            return out
        norm = normalized(filters)
        gids = None if norm is None else self._matching_gids(norm)
        stop = self._last_seq + 1  # candidates lie below it: the end, or the first damaged seq
        damaged = self._damaged.first_at_or_after(start) if self._damaged else None
        if damaged is not None:
            stop = damaged
        used = 0  # the sizes of `out`, when max_bytes
        segs = self._segs if gids is None or gids else ()  # no subject matches: none to read
        for k in range(max(0, bisect_right(self._bases, start) - 1), len(segs)):
            seg = segs[k]
            if seg.base >= stop:
                break
            if not seg.live:
                continue
            matched = single = None
            if gids is not None:
                matched = seg.live_locals(norm, gids.__contains__)
                lsub_live = seg.lsub_live
                if len(matched) == len(seg.lsub_gid):
                    matched = None  # every subject of the segment matches
                elif len(matched) == 1:
                    (single,) = matched
                    if not lsub_live[single]:
                        continue
                elif not any(lsub_live[x] for x in matched):
                    continue
            sel = self._select(seg, start, stop, matched, single, max_msgs - len(out))
            if not sel:
                continue
            full = len(out) + len(sel) >= max_msgs
            if max_bytes > 0:
                cut, used = self._within_bytes(seg, sel, max_bytes, used, not out)
                if cut < len(sel):
                    sel, full = sel[:cut], True
            error = self._decode_batch(seg, sel, out)
            if error is not None:
                if not out:
                    raise error
                return out
            if full:
                return out
        if not out and damaged is not None:
            raise CorruptRecord(damaged, "the next message may be in a damaged range")
        return out

    @staticmethod
    def _select(seg: Segment, start: int, stop: int, matched: frozenset[int] | None,
                single: int | None, want: int):
        """Indices of up to `want` live entries of `seg` with start <= seq < stop, in order:
        all of them (matched None), those of local subject `single`, or those whose local
        subject is in `matched`."""
        seqs, flags = seg.seqs, seg.flags
        i = seg.lower(start)
        end = len(seqs) if seqs[-1] < stop else seg.lower(stop)
        if i >= end:
            return ()
        if matched is None:
            if flags.count(DELETED, i, min(end, i + want)) == 0 and \
                    flags.count(DAMAGED, i, min(end, i + want)) == 0:
                return range(i, min(end, i + want))  # the common case: all live
            out: list[int] = []
            while want > 0:  # runs of live entries
                i = flags.find(LIVE, i, end)
                if i < 0:
                    break
                w = min(end - i, want)
                run = w - len(flags[i:i + w].lstrip(b"\x00"))
                out.extend(range(i, i + run))
                want -= run
                i += run
            return out
        sids = seg.sids
        out = []
        if single is not None:
            while len(out) < want:
                try:
                    i = sids.index(single, i, end)
                except ValueError:
                    break
                if flags[i] == LIVE:
                    out.append(i)
                i += 1
            return out
        for j in range(i, end):
            if flags[j] == LIVE and sids[j] in matched:
                out.append(j)
                if len(out) >= want:
                    break
        return out

    def _within_bytes(self, seg: Segment, sel, max_bytes: int, used: int,
                      first: bool) -> tuple[int, int]:
        """How many of the entries `sel` fit in max_bytes of `StoredMessage.size` on top of
        `used` (the first message of a batch always does), and the new total."""
        sizes, hdrs = seg.sizes, seg.hdrs
        extra = self._sub_extra if self._any_extra else None
        sids, lsub_gid = seg.sids, seg.lsub_gid
        for p, j in enumerate(sel):
            # file_msg_size without its overheads, and the subject in characters
            size = sizes[j] - FILE_MSG_OVERHEAD - (FILE_HDR_OVERHEAD if hdrs[j] else 0)
            if extra is not None:
                size -= extra[lsub_gid[sids[j]]]
            if used + size > max_bytes and not (first and p == 0):
                return p, used
            used += size
        return len(sel), used

    def _decode_batch(self, seg: Segment, sel, out: list[StoredMessage]) -> CorruptRecord | None:
        """Append the messages of entries `sel` (ascending) to `out`, reading neighbouring
        records with one read. Stops at a record that fails verification: `_decode` marks it
        damaged, and its CorruptRecord is returned."""
        offs, sizes, seqs = seg.offs, seg.sizes, seg.seqs
        sids, lsub_gid = seg.sids, seg.lsub_gid
        names, raws = self._sub_names, self._sub_bytes
        unpack, unpack_ttl, unpack_crc = (record.HEADER.unpack_from, record.TTL.unpack_from,
                                          record.CRC.unpack_from)
        crc32, make, append = zlib.crc32, new_message, out.append
        kind_msg, f_ttl = record.KIND_MSG, record.F_TTL
        n = len(sel)
        p = 0
        while p < n:
            i = sel[p]
            lo = offs[i]
            hi = lo + sizes[i] + READ_SLACK
            q = p + 1
            while q < n:  # extend the read over the next records while they are near
                j = sel[q]
                o = offs[j]
                e = o + sizes[j] + READ_SLACK
                if o - hi >= BATCH_GAP or e - lo > BATCH_SPAN:
                    break
                hi = e
                q += 1
            try:
                buf, base = self._fetch(seg, lo, hi - lo, ahead=False)
            except OSError:
                buf, base = b"", 0  # each record is read again on its own below
            size = len(buf)
            with memoryview(buf) as view:
                for r in range(p, q):
                    i = sel[r]
                    o = offs[i] - lo + base
                    seq = seqs[i]
                    # record.decode_at, inlined
                    if o + _HEADER_SIZE <= size:
                        kind, flags, s, h, d, rseq, ts = unpack(buf, o)
                        body = o + _HEADER_SIZE
                        ttl = 0
                        if flags == f_ttl and body + _TTL_SIZE <= size:
                            ttl = unpack_ttl(buf, body)[0]
                            body += _TTL_SIZE
                            flags = 0
                        b = body + s
                        c = b + h
                        e = c + d
                        if (not flags and kind == kind_msg and rseq == seq
                                and e + _CRC_SIZE <= size
                                and crc32(view[o:e]) == unpack_crc(buf, e)[0]):
                            gid = lsub_gid[sids[i]]
                            raw = raws[gid]
                            if s == len(raw) and buf.startswith(raw, body):
                                subject = names[gid]
                            else:
                                subject = buf[body:b].decode()
                            append(make(seq, subject, buf[b:c] if h else b"", buf[c:e], ts, ttl))
                            continue
                    try:  # not whole in this read, or damaged: as load() would
                        append(self._decode(seg, i))
                    except CorruptRecord as exc:
                        return exc
            p = q
        return None

    def _matching_gids(self, norm: tuple[str, ...]) -> set[int]:
        entry = self._match_cache.get(norm)
        if entry is None:
            if len(self._match_cache) > 1024:  # many one-off filters: start over
                self._match_cache.clear()
            entry = self._match_cache[norm] = [0, set()]
        names = self._sub_names
        if entry[0] < len(names):
            match = matcher(norm)
            entry[1].update(g for g in range(entry[0], len(names)) if match(names[g]))
            entry[0] = len(names)
        return entry[1]

    def _wanted(self, seg: Segment, norm: tuple[str, ...], gids: set[int]) -> list[int]:
        return [x for x in seg.live_locals(norm, gids.__contains__) if seg.lsub_live[x]]

    def _next_entry(self, start: int, norm: tuple[str, ...] | None) -> tuple[Segment, int] | None:
        k = max(0, bisect_right(self._bases, start) - 1)
        if norm is None:
            for seg in self._segs[k:]:
                if seg.live:
                    j = seg.flags.find(LIVE, seg.lower(start))
                    if j >= 0:
                        return seg, j
            return None
        gids = self._matching_gids(norm)
        if len(norm) == 1 and len(gids) <= 1:
            gid = next(iter(gids), None)
            if gid is None or not self._s_count[gid]:
                return None
            return self._next_of_subject(gid, start)
        for seg in self._segs[k:]:
            if not seg.live:
                continue
            wanted = self._wanted(seg, norm, gids)
            if not wanted:
                continue
            i = seg.lower(start)
            if len(wanted) == 1:
                j = self._find_local(seg, wanted[0], i)
                if j >= 0:
                    return seg, j
                continue
            sids, flags, wanted_set = seg.sids, seg.flags, set(wanted)
            for j in range(i, len(flags)):
                if flags[j] == LIVE and sids[j] in wanted_set:
                    return seg, j
        return None

    def _next_of_subject(self, gid: int, start: int) -> tuple[Segment, int] | None:
        from_first = start <= self._s_first[gid]
        start = max(start, self._s_first[gid])
        k = max(0, bisect_right(self._bases, start) - 1)
        for seg in self._segs[k:]:
            local = seg.local(gid)
            if local is None or not seg.lsub_live[local]:
                continue
            j = self._find_local(seg, local, seg.lower(start))
            if j >= 0:
                if from_first:
                    self._s_first[gid] = seg.seqs[j]
                return seg, j
        return None

    def load_next(self, start_seq: int, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        start = max(start_seq, self._floor())
        if start > self._last_seq:
            return None
        found = self._next_entry(start, normalized(filters))
        if self._damaged:
            d = self._damaged.first_at_or_after(start)
            if d is not None and (found is None or d < found[0].seqs[found[1]]):
                raise CorruptRecord(d, "the next message may be in a damaged range")
        if found is None:
            return None
        return self._decode(*found)

    def _exact_last(self, gid: int) -> int:
        """The newest live seq of a subject (count must be > 0)."""
        if gid not in self._stale_last:
            return self._s_last[gid]
        upper = self._s_last[gid]
        k = bisect_right(self._bases, upper) - 1
        for seg in reversed(self._segs[:k + 1]):
            local = seg.local(gid)
            if local is None or not seg.lsub_live[local]:
                continue
            sids, flags = seg.sids, seg.flags
            for i in range(len(flags) - 1, -1, -1):
                if flags[i] == LIVE and sids[i] == local:
                    self._s_last[gid] = seg.seqs[i]
                    self._stale_last.discard(gid)
                    return seg.seqs[i]
        log.error("store %s: subject %s has a count but no message", self.config.name,
                  self._sub_names[gid])
        return 0

    def load_last(self, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        norm = normalized(filters)
        seq = 0
        if norm is None:
            for seg in reversed(self._segs):
                if seg.live:
                    seq = seg.seqs[seg.flags.rfind(LIVE)]
                    break
        else:
            for gid in self._matching_gids(norm):
                if self._s_count[gid]:
                    seq = max(seq, self._exact_last(gid))
        if self._damaged:
            for lo, hi in reversed(self._damaged.ranges()):
                if hi > seq:
                    raise CorruptRecord(max(lo, seq + 1), "the last message may be damaged")
        if not seq:
            return None
        return self.load(seq)

    def last_seq_for(self, subject: str) -> int:
        self._check_open()
        gid = self._sub_id.get(subject)
        if gid is None or not self._s_count[gid]:
            return 0
        return self._exact_last(gid)

    def num_pending(self, start_seq: int, filters: tuple[str, ...] = (ALL,),
                    last_per_subject: bool = False) -> int:
        self._check_open()
        start = max(start_seq, self._first)
        if start > self._last_seq:
            return 0
        norm = normalized(filters)
        gids = None if norm is None else self._matching_gids(norm)
        if last_per_subject:
            pool = range(len(self._s_count)) if gids is None else gids
            return sum(1 for g in pool if self._s_count[g] and (
                self._s_last[g] >= start and self._exact_last(g) >= start))
        if start <= self._first:
            return self._msgs if gids is None else sum(self._s_count[g] for g in gids)
        total = 0
        k = max(0, bisect_right(self._bases, start) - 1)
        for seg in self._segs[k:]:
            if not seg.live:
                continue
            i = seg.lower(start)
            if gids is None:
                total += seg.live if i == 0 else seg.flags.count(LIVE, i)
                continue
            wanted = self._wanted(seg, norm, gids)
            if not wanted:
                continue
            if i == 0:
                total += sum(seg.lsub_live[x] for x in wanted)
                continue
            sids, flags, wanted_set = seg.sids, seg.flags, set(wanted)
            total += sum(1 for j in range(i, len(flags))
                         if flags[j] == LIVE and sids[j] in wanted_set)
        return total

    @property
    def first_seq(self) -> int:
        return self._first if not self._damaged else self._floor()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def msgs(self) -> int:
        return self._msgs

    def msg_size(self, subject: str, hdr: bytes, data: bytes) -> int:
        return file_msg_size(subject_len(subject), len(hdr), len(data))

    def state(self) -> StoreState:
        self._check_open()
        first = self._floor()
        first_ts = 0
        if self._msgs:
            loc = self._locate(self._first)
            if loc is not None:
                first_ts = loc[0].tss[loc[1]]
        span = self._last_seq - first + 1
        damaged = self._damaged.count()
        return StoreState(
            msgs=self._msgs, bytes=self._bytes, first_seq=first, first_ts=first_ts,
            last_seq=self._last_seq, last_ts=self._last_ts,
            num_deleted=max(0, span - self._msgs - damaged) if span > 0 else 0,
            num_subjects=self._nsubj, damaged=self._damaged.ranges())

    def subjects(self, filter: str = ALL) -> dict[str, int]:
        self._check_open()
        norm = normalize(filter)
        pool = range(len(self._s_count)) if norm is None else sorted(self._matching_gids(norm))
        return {self._sub_names[g]: self._s_count[g] for g in pool if self._s_count[g]}

    def deleted(self) -> list[int]:
        self._check_open()
        first, last = self._floor(), self._last_seq
        out: list[int] = []
        prev = first - 1
        for seg in self._segs:
            seqs, flags = seg.seqs, seg.flags
            for i in range(seg.lower(first), len(seqs)):
                seq = seqs[i]
                if seq > last:
                    break
                out.extend(range(prev + 1, seq))
                if flags[i] == DELETED:
                    out.append(seq)
                prev = seq
        out.extend(range(prev + 1, last + 1))
        if self._damaged:
            out = [s for s in out if s not in self._damaged]
        return out

    # -----------------------------------------------------------------------------------------
    # Durability

    def _flush_markers(self) -> None:
        """Queued removals become records in the active segment."""
        seg = self._active
        floor = self._floor()
        wrote = False
        if floor > self._written_floor or self._skip_pending:
            # Also carries the numbering past skipped sequences that no record holds.
            seg.file.append(record.encode_purge(floor, self._last_seq, self._last_ts))
            self._written_floor = max(self._written_floor, floor)
            self._skip_pending = False
            wrote = True
        if self._pending_tombs:
            tombs = array("Q", (s for s in self._pending_tombs if s >= floor))
            self._pending_tombs = array("Q")
            for k in range(0, len(tombs), record.MAX_DEL_SEQS):
                chunk = tombs[k:k + record.MAX_DEL_SEQS]
                seg.file.append(record.encode_del(chunk))
                seg.tombs.extend(chunk)
                wrote = True
        if wrote:
            seg.size = seg.file.length
            self._dirty[seg.id] = seg

    def begin_sync(self) -> SyncJob | None:
        self._check_open()
        self._reap()
        self._flush_markers()
        plan = Plan(self._dir)
        job_segs: list[Segment] = []
        synced: list[tuple[Segment, int]] = []
        for seg in sorted(self._dirty.values(), key=lambda s: s.id):
            f = seg.file
            if f.handed < f.length:
                plan.writes.append((f.fd, *f.take()))
            if f.length > f.durable:
                plan.syncs.append((f.fd, f.path, f.length))
                synced.append((seg, f.length))
                f.inflight += 1
                job_segs.append(seg)
        self._dirty.clear()
        plan.patches, self._patches = self._patches, []
        indexed = self._plan_indexes(plan)
        compactions = self._plan_compaction(plan)
        dead, self._dead = self._dead, []
        for seg in dead:
            plan.unlinks.append(seg.path)
            if os.path.exists(self._idx_path(seg.id)) or seg.index_queued:
                plan.unlinks.append(self._idx_path(seg.id))
        plan.sync_dir = self._dir_ops > self._dir_synced
        if plan.empty():
            return None
        job = FileSyncJob(plan, self._jobs[-1] if self._jobs else None)
        job.synced = synced
        job.indexed = indexed
        job.dead = dead
        job.dir_ops = self._dir_ops
        job.segs = job_segs
        job.compactions = compactions
        job.seq_hi = self._last_seq
        self._jobs.append(job)
        return job

    def _plan_indexes(self, plan: Plan) -> list[Segment]:
        ready = []
        for seg in self._unindexed:
            if seg.compacting:
                continue  # the compaction writes its index
            if seg.file is not None and seg.file.handed < seg.file.length:
                continue  # pragma: no cover - begin_sync hands every dirty byte to the job
            names = [self._sub_names[g] for g in seg.lsub_gid]
            head, blobs = segindex.head_and_blobs(seg, names)
            plan.indexes.append(IndexWrite(seg.path, self._idx_path(seg.id), seg.size, head,
                                           blobs))
            ready.append(seg)
        self._unindexed = [s for s in self._unindexed if s not in ready and not s.compacting]
        for seg in ready:
            seg.index_queued = False
        return ready

    def _compaction_candidate(self) -> Segment | None:
        """A sealed, durable, undamaged segment whose live records fill less than
        `compact_ratio` of it."""
        ratio = self._opt.compact_ratio
        worth = min(64 << 10, self._opt.segment_bytes // 4)  # bytes a rewrite must reclaim
        for k, seg in enumerate(self._segs[:-1]):
            if (seg.file is not None or seg.compacting or not seg.header.generation
                    or not seg.indexed or seg.live == len(seg.seqs)):
                continue
            live = seg.live_bytes + seg.live * READ_SLACK  # at most what their records take
            if live >= ratio * seg.size or seg.size - live < worth:
                continue
            nxt = self._bases[k + 1]
            if any(lo < nxt and hi >= seg.base for lo, hi in self._damaged.ranges()):
                continue
            return seg
        return None

    def _plan_compaction(self, plan: Plan) -> list[tuple[Segment, Compaction, Segment, list]]:
        if not self._compact_check:
            return []
        seg = self._compaction_candidate()
        if seg is None:
            self._compact_check = False
            return []
        keep = seg.live_entries()
        new, ranges = self._compacted(seg, keep)
        markers = self._surviving_markers(seg, new)
        new.size += len(markers)
        names = [self._sub_names[g] for g in seg.lsub_gid]
        head, blobs = segindex.head_and_blobs(new, names)
        compaction = Compaction(seg.path, self._idx_path(seg.id),
                                record.encode_segment_header(new.header), ranges, markers,
                                head, blobs)
        plan.compactions.append(compaction)
        seg.compacting = True
        seg.pin_fd = durable.open_ro(seg.path)
        return [(seg, compaction, new, keep)]

    def _compacted(self, seg: Segment, keep: list[int]) -> tuple[Segment, list[list[int]]]:
        """The segment as it will be after keeping entries `keep`, and the byte ranges of the
        old file to copy."""
        h = seg.header
        new = Segment(seg.id, seg.path,
                      SegmentHeader(seg.id, _generation(), h.floor, h.next_seq, h.last_ts))
        new.lsub_gid = seg.lsub_gid
        nlocal = len(seg.lsub_gid)
        new.lsub_total = array("I", bytes(4 * nlocal))
        new.lsub_first = array("Q", bytes(8 * nlocal))
        new.lsub_last = array("Q", bytes(8 * nlocal))
        new.sids = array(seg.sids.typecode)
        ttls = dict(zip(seg.ttl_seqs, seg.ttl_exps, strict=True))
        ranges: list[list[int]] = []
        off = SEGMENT_HEADER_SIZE
        for i in keep:
            seq, local, size, has_hdr = seg.seqs[i], seg.sids[i], seg.sizes[i], seg.hdrs[i]
            length = record.msg_length(size, has_hdr, seq in ttls)
            old = seg.offs[i]
            if ranges and ranges[-1][0] + ranges[-1][1] == old:
                ranges[-1][1] += length
            else:
                ranges.append([old, length])
            new.seqs.append(seq)
            new.offs.append(off)
            new.sizes.append(size)
            new.tss.append(seg.tss[i])
            new.sids.append(local)
            new.hdrs.append(has_hdr)
            if not new.lsub_total[local]:
                new.lsub_first[local] = seq
            new.lsub_total[local] += 1
            new.lsub_last[local] = seq
            if seq in ttls:
                new.ttl_seqs.append(seq)
                new.ttl_exps.append(ttls[seq])
            off += length
        new.flags = bytearray(len(keep))
        new.size = off
        new.max_ts = seg.max_ts
        new.ts_sorted = seg.ts_sorted
        new.min_ts = min(new.tss) if keep else seg.min_ts
        if keep:
            new.max_seq, new.max_seq_ts = new.seqs[-1], new.tss[-1]
        return new, [(a, n) for a, n in ranges]

    def _surviving_markers(self, seg: Segment, new: Segment) -> bytes:
        """Tombstones that delete records of earlier segments still on disk, and the purge
        marker's numbering, must outlive the compaction."""
        low = max(self._bases[0], self._written_floor)
        tombs = array("Q", (t for t in seg.tombs if low <= t < seg.base))
        new.tombs = tombs
        parts = [record.encode_del(tombs[k:k + record.MAX_DEL_SEQS])
                 for k in range(0, len(tombs), record.MAX_DEL_SEQS)]
        if seg.mark_floor or seg.mark_last_seq:
            parts.append(record.encode_purge(seg.mark_floor, seg.mark_last_seq,
                                             seg.mark_last_ts))
            new.mark_floor = seg.mark_floor
            new.mark_last_seq, new.mark_last_ts = seg.mark_last_seq, seg.mark_last_ts
        return b"".join(parts)

    def _finish_compaction(self, seg: Segment, c: Compaction, new: Segment,
                           keep: list[int]) -> None:
        """After the job (even a failed one): use the new layout if the new file is in place."""
        seg.compacting = False
        if seg.pin_fd is not None:
            os.close(seg.pin_fd)
            seg.pin_fd = None
        fd = self._readers.pop(seg.id, None)
        if fd is not None:
            os.close(fd)
        if c.renamed:
            flags = seg.flags
            seg.flags = bytearray(flags[i] for i in keep)
            for name in ("header", "seqs", "offs", "sizes", "tss", "sids", "hdrs", "lsub_total",
                         "lsub_first", "lsub_last", "tombs", "ttl_seqs", "ttl_exps",
                         "max_seq", "max_seq_ts", "size", "min_ts"):
                setattr(seg, name, getattr(new, name))
            seg.expire_pos = 0
            seg.match_cache.clear()
            seg.recompute_live()
            seg.indexed = c.indexed
            if not c.indexed:
                self._queue_index(seg)
            log.info("store %s: compacted segment %d to %d bytes", self.config.name, seg.id,
                     seg.size)
        erase, seg.erase_later = seg.erase_later, []
        for seq in erase:
            i = seg.find(seq)
            if i >= 0:
                self._erase(seg, i)

    def _reap(self) -> None:
        while self._jobs and self._jobs[0].done.is_set():
            self._finalize(self._jobs.popleft())

    def finish_sync(self, job: SyncJob) -> None:
        if not isinstance(job, FileSyncJob) or job.finished:
            return
        while self._jobs:
            head = self._jobs[0]
            if not head.done.is_set():
                raise StoreError("finish_sync() called before the job ran")
            self._jobs.popleft()
            self._finalize(head)
            if head is job:
                return

    def _finalize(self, job: FileSyncJob) -> None:
        job.finished = True
        for seg in job.segs:
            seg.file.inflight -= 1
        for compaction in job.compactions:
            self._finish_compaction(*compaction)
        if job.error is not None:
            self._sync_failed(job)
            return
        for seg, length in job.synced:
            seg.file.synced(length)
        self._synced_seq = max(self._synced_seq, job.seq_hi)
        self._degraded = None
        for seg in job.indexed:
            seg.indexed = True
        self._dir_synced = max(self._dir_synced, job.dir_ops)
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
                f.trim(self._opt.cache_bytes, self._opt.retry_bytes)

    def _sync_failed(self, job: FileSyncJob) -> None:
        """Nothing the job covered is durable. Its bytes stay pending (the next job writes them
        again), but the messages it covered are withdrawn: whoever waited on this job is told it
        failed, so those messages must never show up later."""
        error = job.error
        self._degraded = error if isinstance(error, OSError) else OSError(errno.EIO, str(error))
        alive = set(map(id, self._segs))
        for seg in job.segs:
            seg.file.failed()
            if id(seg) in alive:
                self._dirty[seg.id] = seg
        for seg in job.indexed:
            if id(seg) in alive:
                self._queue_index(seg)
        self._patches = job.plan.patches + self._patches
        self._dead = job.dead + self._dead
        withdrawn = self._withdraw(self._synced_seq + 1, job.seq_hi)
        log.error("store %s: sync failed (%s); %d unsynced messages withdrawn", self.config.name,
                  error, withdrawn)

    def _withdraw(self, lo: int, hi: int) -> int:
        """Delete the live messages with lo <= seq <= hi."""
        removed = 0
        for seg, i in self._live_in(lo, hi):
            self._delete_at(seg, i)
            removed += 1
        self._drop_dead_front()
        return removed

    def _live_in(self, lo: int, hi: int) -> Iterator[tuple[Segment, int]]:
        """(segment, index) of each live entry with lo <= seq <= hi. The caller may mark each
        one deleted or damaged as it goes (flags change, positions do not)."""
        k = max(0, bisect_right(self._bases, lo) - 1)
        for seg in self._segs[k:]:
            if seg.base > hi:
                return
            seqs, flags = seg.seqs, seg.flags
            for i in range(seg.lower(lo), len(seqs)):
                if seqs[i] > hi:
                    break
                if flags[i] == LIVE:
                    yield seg, i

    # -----------------------------------------------------------------------------------------
    # Truncating

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
        error = self._sync_everything()
        if error is not None:
            raise _full_error(error, f"cannot truncate to {last_seq}: sync failed")
        msgs, removals, damaged = self._msgs, self.removals, self._damaged.ranges()
        try:  # nothing has changed yet if this fails
            segment, data, remove = self._truncated_files(last_seq)
            truncation.prepare(self._dir, segment, data)
        except OSError as e:
            raise _full_error(e, f"cannot truncate to {last_seq}") from e
        try:
            truncation.commit(self._dir, segment, remove, last_seq)
            truncation.finish(self._dir)
            self._reload()
        except (OSError, StoreError) as e:
            self._release()
            raise StoreError(f"truncating to {last_seq} did not complete ({e}); the store is "
                             "closed: opening it again finishes or undoes the truncation") from e
        self._keep_damage(damaged)
        self.removals = removals + msgs - self._msgs
        log.info("store %s: truncated to %d, %d messages removed", self.config.name, last_seq,
                 msgs - self._msgs)

    def _truncated_files(self, last_seq: int) -> tuple[str, bytes, list[str]]:
        """For a store whose files hold its state: the name of the segment to rewrite, its new
        contents, and the names of the files to remove."""
        floor = self._floor_after(last_seq)
        last_ts = self._newest_ts_through(last_seq)
        k = bisect_right(self._bases, last_seq) - 1
        seg = self._segs[max(k, 0)]
        above = self._segs[max(k, 0) + 1:]
        tombs = array("Q")
        for s in above:
            tombs.extend(s.tombs)
        if k < 0:  # every segment lies above the cut: the first one keeps only the numbering
            head = record.encode_segment_header(
                SegmentHeader(seg.id, _generation(), floor, last_seq + 1, last_ts))
            body, keep_last = b"", False
            tombs.extend(seg.tombs)
        else:
            head, body = self._split_segment(seg)
            loc = self._locate(last_seq)
            keep_last = loc is not None and loc[0].flags[loc[1]] != DELETED
        damage_is_beyond = all(lo > last_seq for lo, _ in self._damaged.ranges())
        try:
            data = truncation.rewrite(head, body, last_seq, keep_last, tombs, floor, last_ts,
                                      damage_is_beyond)
        except ValueError as e:  # pragma: no cover - even without the damage before the cut
            raise StoreError(f"cannot truncate segment {seg.id}: {e}") from e
        remove = [os.path.basename(self._idx_path(seg.id))]  # it would describe the old file
        for s in above:
            remove += [os.path.basename(s.path), os.path.basename(self._idx_path(s.id))]
        return os.path.basename(seg.path), data, remove

    def _split_segment(self, seg: Segment) -> tuple[bytes, bytes]:
        """A segment file as (a new header for it, its records). A new generation, because the
        file changes; a damaged header stays as it is, with the records (the file is scanned
        from its start then)."""
        with open(seg.path, "rb") as f:
            buf = f.read()
        h = seg.header
        if not h.generation:
            return b"", buf
        head = record.encode_segment_header(
            SegmentHeader(h.seg_id, _generation(), h.floor, h.next_seq, h.last_ts))
        return head, buf[SEGMENT_HEADER_SIZE:]

    def _floor_after(self, last_seq: int) -> int:
        """The floor once everything above `last_seq` is gone."""
        first = self._first if self._first <= last_seq else last_seq + 1
        d = self._damaged.first()
        return d if d is not None and d < first else first

    def _newest_ts_through(self, last_seq: int) -> int:
        """The timestamp of the newest live message at or below `last_seq`; 0 if none."""
        k = bisect_right(self._bases, last_seq) - 1
        for seg in reversed(self._segs[:k + 1]):
            i = seg.flags.rfind(LIVE, 0, seg.lower(last_seq + 1))
            if i >= 0:
                return seg.tss[i]
        return 0

    def _reload(self) -> None:
        """Drop every in-memory structure and build them again from the files, as opening does,
        except that sealed segments' checksums are not verified again: they were when the store
        was opened, and every read checks its record."""
        self._release()
        self._init_state()
        self._verify = False
        self._open()
        self._verify = self._opt.verify_segments

    def _keep_damage(self, ranges: list[tuple[int, int]]) -> None:
        """Records found damaged by reads before a reload are not in any index: mark them
        again (a reopen finds them by their checksums)."""
        for lo, hi in ranges:
            for seg, i in self._live_in(lo, hi):
                self._delete_at(seg, i, DAMAGED)
                self._damaged.add(seg.seqs[i], seg.seqs[i])
        self._drop_dead_front()

    def close(self) -> None:
        if self._closed:
            return
        try:
            error = self._sync_everything()
        finally:
            self._release()
        if error is not None:
            raise _full_error(error, "close could not sync") from error

    def _sync_everything(self) -> OSError | None:
        """Run every outstanding job (begun but not run, or running in another thread) and one
        more covering everything since, and finish them all. Returns the last job's error: an
        earlier failure is retried by that last job."""
        for job in list(self._jobs):
            with contextlib.suppress(OSError):
                job.run()
        self._reap()
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

    def _release(self) -> None:
        self._closed = True
        self._block = None
        for seg in self._segs + self._dead:
            if seg.file is not None:
                seg.file.close()
                seg.file = None
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()

    def destroy(self) -> None:
        try:
            self.close()
        except StoreError as e:
            log.warning("store %s: close before destroy failed: %s", self.config.name, e)
        for name in os.listdir(self._dir):
            durable.unlink(os.path.join(self._dir, name))
        durable.rmdir(self._dir)
