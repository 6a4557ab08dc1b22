"""What truncating a store to a sequence writes: the new contents of the segment holding the cut
and the files to remove. `storage.truncation` commits them crash-safely (an intent file); the
store (`FileStore.truncate`) syncs everything first, so the files hold exactly the state in
memory, and rebuilds its index from the files afterwards.

A framed (compressed) segment holding the cut is rewritten plain, from its logical bytes (damaged
frames read as zeros, which a scan reports as damage, as damaged bytes of a plain file): after
the truncation it is the store's last segment, which is appended to.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right

from storage import framing, record, truncation
from storage.filestore.index import StoreIndex
from storage.filestore.layout import idx_path, new_generation
from storage.record import SEGMENT_HEADER_SIZE, SegmentHeader
from storage.segment import DELETED, LIVE, Segment
from storage.store import StoreError


def truncated_files(ix: StoreIndex, directory: str,
                    last_seq: int) -> tuple[str, bytes, list[str]]:
    """For a store whose files hold its state: the name of the segment to rewrite, its new
    contents, and the names of the files to remove."""
    floor = _floor_after(ix, last_seq)
    last_ts = _newest_ts_through(ix, last_seq)
    k = bisect_right(ix.bases, last_seq) - 1
    seg = ix.segs[max(k, 0)]
    above = ix.segs[max(k, 0) + 1:]
    tombs = array("Q")
    for s in above:
        tombs.extend(s.tombs)
    if k < 0:  # every segment lies above the cut: the first one keeps only the numbering
        head = record.encode_segment_header(
            SegmentHeader(seg.id, new_generation(), floor, last_seq + 1, last_ts))
        body, keep_last = b"", False
        tombs.extend(seg.tombs)
    else:
        head, body = _split_segment(seg)
        loc = ix.locate(last_seq)
        keep_last = loc is not None and loc[0].flags[loc[1]] != DELETED
    damage_is_beyond = all(lo > last_seq for lo, _ in ix.damaged.ranges())
    try:
        data = truncation.rewrite(head, body, last_seq, keep_last, tombs, floor, last_ts,
                                  damage_is_beyond)
    except ValueError as e:  # pragma: no cover - even without the damage before the cut
        raise StoreError(f"cannot truncate segment {seg.id}: {e}") from e
    remove = [os.path.basename(idx_path(directory, seg.id))]  # it would describe the old file
    for s in above:
        remove += [os.path.basename(s.path), os.path.basename(idx_path(directory, s.id))]
    return os.path.basename(seg.path), data, remove


def _split_segment(seg: Segment) -> tuple[bytes, bytes]:
    """A segment file as (a new header for it, its records). A new generation, because the
    file changes; a damaged header stays as it is, with the records (the file is scanned
    from its start then)."""
    with open(seg.path, "rb") as f:
        buf = f.read()
    h = seg.header
    if h.framed or (not h.generation and framing.looks_framed(buf)):
        buf = framing.unframe(buf, framing.Codecs()).logical
    if not h.generation:
        return b"", buf
    head = record.encode_segment_header(
        SegmentHeader(h.seg_id, new_generation(), h.floor, h.next_seq, h.last_ts))
    return head, buf[SEGMENT_HEADER_SIZE:]


def _floor_after(ix: StoreIndex, last_seq: int) -> int:
    """The floor once everything above `last_seq` is gone."""
    first = ix.first if ix.first <= last_seq else last_seq + 1
    d = ix.damaged.first()
    return d if d is not None and d < first else first


def _newest_ts_through(ix: StoreIndex, last_seq: int) -> int:
    """The timestamp of the newest live message at or below `last_seq`; 0 if none."""
    k = bisect_right(ix.bases, last_seq) - 1
    for seg in reversed(ix.segs[:k + 1]):
        i = seg.flags.rfind(LIVE, 0, seg.lower(last_seq + 1))
        if i >= 0:
            return seg.tss[i]
    return 0
