"""Compaction: rewriting a sealed segment that is mostly deleted, keeping its live records.

Chosen at `begin_sync` (`plan`): a sealed, durable, indexed, undamaged segment whose live records
fill less than `compact_ratio` of it, when the rewrite reclaims enough. The rewrite (a
`syncjob.Compaction`, run inside the sync job after the tombstones that deleted its records are
durable) copies the live records behind a new header (a new generation: cached bytes of the old
file are never taken for the new one), plus the markers that must survive: tombstones deleting
records of earlier segments still on disk, and the purge marker's numbering. While it runs the
old file is read through a pinned fd, and erasures wait (`Segment.erase_later`). Afterwards
(`adopt`) the segment takes the new layout if the new file is in place.

A framed (compressed) segment is compacted the same way in logical bytes: its records are read
from its frames and the result is framed again. It is also the only way to erase a record of a
framed segment (frames cannot be patched in place), so a framed segment owing an erasure
(`Segment.erase_owed`) is a candidate whatever its live share.
"""

from __future__ import annotations

import logging
from array import array

from storage import durable, framing, record, segindex
from storage.filestore.index import StoreIndex
from storage.filestore.layout import idx_path, new_generation
from storage.filestore.options import FileStoreOptions
from storage.filestore.syncjob import Compaction
from storage.record import READ_SLACK, SEGMENT_HEADER_SIZE, SegmentHeader
from storage.segment import Segment

log = logging.getLogger("storage")

# What a compaction plans: (the segment, its rewrite, the segment as rewritten, entries kept).
Planned = tuple[Segment, Compaction, Segment, list[int]]

# The fields a rewritten segment takes from its new layout (flags are filtered separately).
_ADOPTED = ("header", "seqs", "offs", "sizes", "tss", "sids", "hdrs", "lsub_total", "lsub_first",
            "lsub_last", "tombs", "ttl_seqs", "ttl_exps", "max_seq", "max_seq_ts", "size",
            "min_ts")


def plan(ix: StoreIndex, directory: str, opt: FileStoreOptions,
         written_floor: int) -> Planned | None:
    """Choose a segment worth rewriting and plan its rewrite; None when none is. The segment is
    marked `compacting` and its old file pinned until `adopt` (or a failure) ends it."""
    seg = _candidate(ix, opt)
    if seg is None:
        return None
    keep = seg.live_entries()
    new, ranges = _compacted(seg, keep)
    markers = _surviving_markers(seg, new, max(ix.bases[0], written_floor))
    new.size += len(markers)
    names = [ix.subjects.names[g] for g in seg.lsub_gid]
    head, blobs = segindex.head_and_blobs(new, names)
    framed = seg.frames is not None
    compaction = Compaction(seg.path, idx_path(directory, seg.id),
                            record.encode_segment_header(new.header), ranges, markers, head,
                            blobs, source=seg.frames,
                            codec=framing.CODEC_ZSTD if framed else None,
                            starts=new.offs if framed else None, frame_bytes=opt.frame_bytes)
    seg.compacting = True
    seg.pin_fd = durable.open_ro(seg.path)
    return seg, compaction, new, keep


def _candidate(ix: StoreIndex, opt: FileStoreOptions) -> Segment | None:
    """A sealed, durable, undamaged segment whose live records fill less than
    `compact_ratio` of it, or a framed one owing an erasure."""
    ratio = opt.compact_ratio
    worth = min(64 << 10, opt.segment_bytes // 4)  # bytes a rewrite must reclaim
    for k, seg in enumerate(ix.segs[:-1]):
        if (seg.file is not None or seg.compacting or not seg.header.generation
                or not seg.indexed or seg.live == len(seg.seqs)):
            continue
        if not seg.erase_owed:
            size = seg.logical_size
            live = seg.live_bytes + seg.live * READ_SLACK  # at most what their records take
            # What the rewrite reclaims on disk (in proportion, for a framed segment).
            reclaimed = (size - live) * seg.size / size if size else 0
            if live >= ratio * size or reclaimed < worth:
                continue
        nxt = ix.bases[k + 1]
        if any(lo < nxt and hi >= seg.base for lo, hi in ix.damaged.ranges()):
            continue
        return seg
    return None


def _compacted(seg: Segment, keep: list[int]) -> tuple[Segment, list[tuple[int, int]]]:
    """The segment as it will be after keeping entries `keep`, and the byte ranges of the
    old file to copy."""
    h = seg.header
    new = Segment(seg.id, seg.path,
                  SegmentHeader(seg.id, new_generation(), h.floor, h.next_seq, h.last_ts,
                                h.framed))
    new.lsub_gid = seg.lsub_gid
    nlocal = len(seg.lsub_gid)
    new.lsub_total = array("I", bytes(4 * nlocal))
    new.lsub_first = array("Q", bytes(8 * nlocal))
    new.lsub_last = array("Q", bytes(8 * nlocal))
    new.sids = array(seg.sids.typecode)
    ttls = dict(zip(seg.ttl_seqs, seg.ttl_exps, strict=True))
    ranges: list[list[int]] = []  # [offset, length], merged while contiguous
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


def _surviving_markers(seg: Segment, new: Segment, low: int) -> bytes:
    """Tombstones that delete records of earlier segments still on disk (sequences from `low`,
    the lowest a file may still hold), and the purge marker's numbering, must outlive the
    compaction."""
    tombs = array("Q", (t for t in seg.tombs if low <= t < seg.base))
    new.tombs = tombs
    parts = [record.encode_del(tombs[k:k + record.MAX_DEL_SEQS])
             for k in range(0, len(tombs), record.MAX_DEL_SEQS)]
    if seg.mark_floor or seg.mark_last_seq:
        parts.append(record.encode_purge(seg.mark_floor, seg.mark_last_seq, seg.mark_last_ts))
        new.mark_floor = seg.mark_floor
        new.mark_last_seq, new.mark_last_ts = seg.mark_last_seq, seg.mark_last_ts
    return b"".join(parts)


def adopt(seg: Segment, c: Compaction, new: Segment, keep: list[int]) -> None:
    """The rewrite `c` put the new file in place: `seg` takes the layout `new` describes."""
    flags = seg.flags
    seg.flags = bytearray(flags[i] for i in keep)
    for name in _ADOPTED:
        setattr(seg, name, getattr(new, name))
    seg.frames = c.table  # None unless framed; the size is then the framed file's
    if c.table is not None:
        seg.size = c.table.size
    seg.erase_owed = False
    seg.expire_pos = 0
    seg.match_cache.clear()
    seg.recompute_live()
    seg.indexed = c.indexed
