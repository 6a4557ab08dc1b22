"""Opening a store: reading its directory back into an empty `StoreIndex`.

Finish a truncation a crash interrupted (`storage.truncation`), remove leftovers (`*.tmp`, an
index without its segment), read `store.meta` (refuse a damaged one), load each sealed segment's
index (verify its CRC and the segment's; rebuild it by scanning when missing or damaged), scan
the active segment record by record cutting a torn tail, then replay markers: the highest floor,
tombstones, ttls.

Damage: bytes that fail verification inside a segment become damaged sequence ranges (between
the last good sequence before them and the first good one after), never served and reported by
`state().damaged`; a damaged segment header makes the segment's base come from its records or
its neighbours. Everything recovery serves is made durable before the store is used (a tail may
have been written but never synced), so recovery never builds on bytes a power loss could take.

A framed (compressed) segment is scanned in its logical bytes (`storage.framing.unframe`): a
frame failing its checksums reads as zeros, so its records become a damaged range exactly as
damaged bytes of a plain segment do. A framed segment is never appended to: when it is the last
one, a new active segment follows it.
"""

from __future__ import annotations

import heapq
import json
import logging
import mmap
import os
import zlib
from array import array

from storage import durable, framing, record, segindex, truncation
from storage.durable import AppendFile, DamagedFile
from storage.filestore.index import StoreIndex
from storage.filestore.layout import FORMAT_VERSION, META, idx_path, seg_path
from storage.filestore.syncjob import IndexWrite
from storage.ranges import RangeSet
from storage.record import SEGMENT_HEADER_SIZE, Damage, SegmentHeader
from storage.segment import DAMAGED, DELETED, LIVE, Segment
from storage.store import StoreError

log = logging.getLogger("storage")


class Recovery:
    """Reads the store `name` in `directory` (which exists) into an empty index."""

    def __init__(self, directory: str, name: str, verify: bool, progress_every: int,
                 compress: bool = False) -> None:
        self.directory = directory
        self.name = name
        self.verify = verify  # check sealed segments' CRCs against their indexes
        self.progress_every = progress_every
        # The store compresses: a sealed plain segment without an index file was sealed but
        # not yet compressed (its plain index is held back for that): leave it to the next sync.
        self.compress = compress

    def run(self, ix: StoreIndex, first_seq: int) -> int:
        """Fill `ix` from the files; returns the floor the files record (every sequence below
        it is gone). `first_seq`: the first sequence of an empty store."""
        self._finish_truncation()
        seg_ids = self._tidy_directory()
        self._load_meta(bool(seg_ids))
        segs = self._load_segments(seg_ids)
        return self._assemble(ix, segs, first_seq)

    # The directory

    def _finish_truncation(self) -> None:
        """A truncation that was committed but not finished when the process died."""
        last_seq = truncation.finish(self.directory)
        if last_seq is not None:
            log.warning("store %s: finished truncating to %d after a crash", self.name,
                        last_seq)

    def _tidy_directory(self) -> list[int]:
        seg_ids, stale = [], []
        names = set(os.listdir(self.directory))
        for name in names:
            stem, _, ext = name.partition(".")
            if ext.endswith("tmp"):
                stale.append(name)
            elif ext == "seg" and stem.isdigit():
                seg_ids.append(int(stem))
            elif ext == "idx" and stem.isdigit() and f"{stem}.seg" not in names:
                stale.append(name)
        for name in stale:
            log.info("store %s: removing leftover %s", self.name, name)
            durable.unlink(os.path.join(self.directory, name))
        return sorted(seg_ids)

    def _load_meta(self, have_segments: bool) -> None:
        path = os.path.join(self.directory, META)
        try:
            payload = durable.read_checked(path)
        except FileNotFoundError:
            if have_segments:
                raise StoreError(f"{path} is missing but {self.directory} holds segments; "
                                 "refusing to guess what they are") from None
            meta = {"version": FORMAT_VERSION, "name": self.name}
            durable.write_checked(path, json.dumps(meta).encode())
            return
        except DamagedFile as e:
            log.error("store %s: %s; refusing to open", self.name, e)
            raise
        try:
            meta = json.loads(payload)
            version = meta["version"]
        except (ValueError, KeyError, TypeError) as e:
            raise DamagedFile(path, f"unreadable contents ({e})") from e
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: unsupported store format version {version}")

    # Segments

    def _load_segments(self, seg_ids: list[int]) -> list[Segment]:
        segs = []
        every = max(1, self.progress_every)
        for k, seg_id in enumerate(seg_ids):
            last = k == len(seg_ids) - 1
            seg = self._load_segment(seg_id, last)
            if seg is not None:
                segs.append(seg)
            if (k + 1) % every == 0:
                log.info("store %s: loaded %d of %d segments", self.name, k + 1, len(seg_ids))
        return segs

    def _load_segment(self, seg_id: int, last: bool) -> Segment | None:
        path = seg_path(self.directory, seg_id)
        idx = idx_path(self.directory, seg_id)
        if last and not os.path.exists(idx):
            return self._scan_segment(seg_id, path, active=True)
        missing = not os.path.exists(idx)
        seg = self._load_indexed(seg_id, path, idx)
        if seg is not None:
            return seg
        seg = self._scan_segment(seg_id, path, active=False)
        if seg is None:
            return None
        if (self.compress and missing and seg.frames is None and seg.header.generation
                and not seg.gaps):
            seg.compress = True  # `FileStore._ready` queues it
        else:
            self._write_index_now(seg)
        return seg

    def _load_indexed(self, seg_id: int, path: str, idx: str) -> Segment | None:
        name = self.name
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
            if self.verify and size:
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
        name = self.name
        with open(path, "rb") as f:
            buf = f.read()
        file_size = len(buf)
        header = record.decode_segment_header(buf)
        if header is None:
            if len(buf) > 0:
                log.error("store %s: segment %d has a damaged header", name, seg_id)
            header = SegmentHeader(seg_id, 0, 0, 0, 0)  # generation 0: unknown, fixed later
        frames = None
        if header.framed or (not header.generation and framing.looks_framed(buf)):
            unframed = framing.unframe(buf, framing.Codecs())
            for a, b in unframed.damaged:
                log.error("store %s: segment %d: %d bytes of damaged frames at offset %d",
                          name, seg_id, b - a, a)
            buf, frames, active = unframed.logical, unframed.table, False
        seg = Segment(seg_id, path, header)
        seg.frames = frames
        seg.lmap = None
        seg_names: list[str] = []
        seg.names = seg_names
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
            _scan_record(seg, seg_names, names, buf, item)
        if in_gap:
            seg.gaps.append((gap_lo, None))
        if active and not header.generation and not seg.seqs and not seg.gaps:
            # A segment whose creation was never synced: nothing in it was ever durable.
            log.info("store %s: removing segment %d: created but never synced", name, seg_id)
            durable.unlink(path)
            return None
        seg.size = end if frames is None else file_size
        seg.sealed = not active
        seg.recompute_live()
        _make_durable(seg, path, seg.size, file_size, active)
        return seg

    def _write_index_now(self, seg: Segment) -> None:
        if not seg.header.generation:
            return  # a segment with a damaged header is rescanned at every open
        head, blobs = segindex.head_and_blobs(seg, list(seg.names or []))
        try:
            IndexWrite(seg.path, idx_path(self.directory, seg.id), seg.size, head, blobs).run()
            seg.indexed = True
        except OSError as e:
            log.warning("store %s: could not write the index of segment %d: %s", self.name,
                        seg.id, e)

    # From segments to the index

    def _assemble(self, ix: StoreIndex, segs: list[Segment], first_seq: int) -> int:
        """Turn loaded segments into the index: bounds, deletions, damage, subjects, ttls."""
        floor, last_seq, last_ts = _bounds(segs, first_seq)
        _fix_bases(segs, floor)
        ix.segs = segs
        ix.bases = [s.base for s in segs]
        ix.last_seq, ix.last_ts = last_seq, last_ts
        _apply_deletions(ix, floor)
        ix.damaged = self._resolve_damage(ix, floor, last_seq)
        for seg in segs:
            if DELETED in seg.flags or DAMAGED in seg.flags:
                seg.recompute_live()
        _build_subjects(ix)
        ix.ttl_heap = _live_ttls(segs)
        ix.msgs = sum(s.live for s in segs)
        ix.bytes = sum(s.live_bytes for s in segs)
        ix.first = ix.scan_first()
        return floor

    def _resolve_damage(self, ix: StoreIndex, floor: int, last_seq: int) -> RangeSet:
        segs = ix.segs
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
                loc = ix.locate(seq)
                if loc is not None and loc[0].flags[loc[1]] == LIVE:
                    loc[0].flags[loc[1]] = DAMAGED
        for lo, hi in damaged.ranges():
            log.error("store %s: sequences %d..%d are damaged and will not be served",
                      self.name, lo, hi)
        return damaged


def _make_durable(seg: Segment, path: str, end: int, size: int, active: bool) -> None:
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


def _scan_record(seg: Segment, seg_names: list[str], names: dict[str, int], buf: bytes,
                 rec: record.Record) -> None:
    kind = rec.kind
    if kind == record.KIND_MSG:
        subject = record.subject_of(buf, rec)
        local = names.get(subject)
        if local is None:
            local = seg._new_local(0, rec.seq)
            names[subject] = local
            seg_names.append(subject)
        seg.append_entry(rec.seq, rec.offset, rec.size, rec.ts, local, 1 if rec.hdr_len else 0)
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


def _bounds(segs: list[Segment], first_seq: int) -> tuple[int, int, int]:
    """(floor, last_seq, last_ts) as the segments' headers, markers and records tell them."""
    if not segs:
        first = max(1, first_seq)
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


def _apply_deletions(ix: StoreIndex, floor: int) -> None:
    for seg in ix.segs:
        seqs = seg.seqs
        if seqs and seqs[0] < floor:
            j = seg.lower(floor)
            seg.flags[:j] = bytes([DELETED]) * j
    for seg in ix.segs:
        for seq in seg.tombs:
            if seq < floor:
                continue
            loc = ix.locate(seq)
            if loc is not None:
                loc[0].flags[loc[1]] = DELETED


def _build_subjects(ix: StoreIndex) -> None:
    segs, subs = ix.segs, ix.subjects
    for seg in segs:
        if seg.names is not None:
            seg.lsub_gid = array("I", [subs.intern(n) for n in seg.names])
            seg.names = None
            seg.lmap = None
    counts, first, last = subs.count, subs.first, subs.last
    for seg in segs:
        for local, gid in enumerate(seg.lsub_gid):
            c = seg.lsub_live[local]
            if not c:
                continue
            if not counts[gid]:
                first[gid] = seg.lsub_first[local]
            counts[gid] += c
            last[gid] = max(last[gid], seg.lsub_last[local])
    subs.nsubj = 0
    for gid, c in enumerate(counts):
        if not c:
            continue
        subs.nsubj += 1
        loc = ix.locate(last[gid])
        if loc is None or loc[0].flags[loc[1]] != LIVE:
            subs.stale_last.add(gid)
    for seg in segs:
        if seg.file is not None:
            seg.local(0)  # the active segment keeps its global -> local map built


def _live_ttls(segs: list[Segment]) -> list[tuple[int, int]]:
    heap = []
    for seg in segs:
        for seq, exp in zip(seg.ttl_seqs, seg.ttl_exps, strict=True):
            i = seg.find(seq)
            if i >= 0 and seg.flags[i] == LIVE:
                heap.append((exp, seq))
    heapq.heapify(heap)
    return heap
