"""The persisted index of a sealed segment (`<id>.idx`), so opening a store reads arrays instead of
scanning every record. Pure encode/decode; `storage.durable` adds the CRC envelope and writes it
atomically.

Payload: `u32 head_len | head (JSON) | blobs`. The head names the segment (id, generation, size and
the CRC32 of the whole segment file, so an index never describes another version of the file),
counts, array type codes, markers, damaged stretches and the byte length of each blob. Blobs, in
order: seqs (empty when the sequences are contiguous), offsets, sizes (as counted in the store's
bytes), timestamps, local subject ids, has-headers flags, per-subject record count, first seq and
last seq, the subject names ("\\n"-joined), tombstone seqs, ttl seqs and their expiry times, and
(version 3) the frame table of a framed segment: each frame's logical start and file offset (empty
for a plain segment; `storage.framing`). Arrays are in the machine's byte order, which the head
records; an index from a machine of the other order, or of another version, is ignored (rebuilt by
scanning). Version 2 indexes (no frame blobs, plain segments only) are still read.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from typing import Any

from storage.framing import FrameTable
from storage.record import SegmentHeader
from storage.segment import DAMAGED, Segment

# 2: sizes count nats-server's per-message overhead; has-headers flags. 3: frame tables.
VERSION = 3
READABLE = (2, 3)
_LEN = struct.Struct("<I")
_BLOBS_V2 = ("seqs", "offs", "sizes", "tss", "sids", "hdrs", "lsub_total", "lsub_first",
             "lsub_last", "names", "tombs", "ttl_seqs", "ttl_exps")
_BLOBS = (*_BLOBS_V2, "frame_lo", "frame_off")


def head_and_blobs(seg: Segment, names: list[str]) -> tuple[dict[str, Any], list[bytes]]:
    """Everything of the index but the segment file's CRC (computed by the sync worker, which
    reads the file anyway). `names`: the segment's local subject names."""
    n = len(seg.seqs)
    contiguous = n == 0 or seg.seqs[-1] - seg.seqs[0] == n - 1
    gaps = [list(g) for g in seg.gaps]
    if DAMAGED in seg.flags:  # damage found when reading: keep reporting it after a restart
        gaps += [[seg.seqs[i] - 1, seg.seqs[i] + 1] for i, f in enumerate(seg.flags)
                 if f == DAMAGED]
    h = seg.header
    head = {
        "v": VERSION, "byteorder": sys.byteorder, "id": seg.id,
        "header": [h.generation, h.floor, h.next_seq, h.last_ts],
        "size": seg.size, "n": n, "first": seg.seqs[0] if n else 0, "contiguous": contiguous,
        "sid_type": seg.sids.typecode, "bytes": sum(seg.sizes),
        "mark": [seg.mark_floor, seg.mark_last_seq, seg.mark_last_ts],
        "max_seq": [seg.max_seq, seg.max_seq_ts], "gaps": gaps,
        "ts": [min(seg.tss) if n else seg.min_ts, seg.max_ts, seg.ts_sorted],
        "framed": h.framed, "logical_size": seg.logical_size,
    }
    frames = seg.frames
    blobs = [
        b"" if contiguous else seg.seqs.tobytes(), seg.offs.tobytes(), seg.sizes.tobytes(),
        seg.tss.tobytes(), seg.sids.tobytes(), bytes(seg.hdrs), seg.lsub_total.tobytes(),
        seg.lsub_first.tobytes(), seg.lsub_last.tobytes(), "\n".join(names).encode(),
        seg.tombs.tobytes(), seg.ttl_seqs.tobytes(), seg.ttl_exps.tobytes(),
        b"" if frames is None else frames.lo.tobytes(),
        b"" if frames is None else frames.off.tobytes(),
    ]
    return head, blobs


def finish(head: dict[str, Any], blobs: list[bytes], file_crc: int) -> bytes:
    head = {**head, "file_crc": file_crc, "blobs": [len(b) for b in blobs]}
    raw = json.dumps(head, separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(raw)), raw, *blobs])


def _array(code: str, raw: bytes) -> array:
    out = array(code)
    out.frombytes(raw)
    return out


def decode(payload: bytes, seg_id: int, path: str) -> tuple[Segment, int]:
    """The segment the index describes and the CRC32 its file must have. ValueError when the
    payload is not a usable index for segment `seg_id`."""
    try:
        (head_len,) = _LEN.unpack_from(payload)
        head = json.loads(payload[_LEN.size:_LEN.size + head_len])
        if (head["v"] not in READABLE or head["byteorder"] != sys.byteorder
                or head["id"] != seg_id):
            raise ValueError("index of another version, byte order or segment")
        blobs: dict[str, bytes] = {}
        pos = _LEN.size + head_len
        names = _BLOBS if head["v"] == 3 else _BLOBS_V2
        for name, length in zip(names, head["blobs"], strict=True):
            blobs[name] = payload[pos:pos + length]
            pos += length
        if pos != len(payload):
            raise ValueError("index length does not add up")
        return _segment(head, blobs, seg_id, path), head["file_crc"]
    except (KeyError, TypeError, IndexError, struct.error, UnicodeDecodeError, OverflowError) as e:
        raise ValueError(f"malformed index: {e!r}") from e


def _segment(head: dict[str, Any], blobs: dict[str, bytes], seg_id: int, path: str) -> Segment:
    generation, floor, next_seq, last_ts = head["header"]
    framed = bool(head.get("framed", False))
    seg = Segment(seg_id, path,
                  SegmentHeader(seg_id, generation, floor, next_seq, last_ts, framed))
    n = head["n"]
    first = head["first"]
    seg.seqs = (array("Q", range(first, first + n)) if head["contiguous"]
                else _array("Q", blobs["seqs"]))
    seg.offs = _array("I", blobs["offs"])
    seg.sizes = _array("I", blobs["sizes"])
    seg.tss = _array("q", blobs["tss"])
    seg.sids = _array(head["sid_type"], blobs["sids"])
    seg.hdrs = bytearray(blobs["hdrs"])
    if not (len(seg.seqs) == len(seg.offs) == len(seg.sizes) == len(seg.tss) == len(seg.sids)
            == len(seg.hdrs) == n):
        raise ValueError("index arrays disagree on the entry count")
    seg.lsub_total = _array("I", blobs["lsub_total"])
    seg.lsub_first = _array("Q", blobs["lsub_first"])
    seg.lsub_last = _array("Q", blobs["lsub_last"])
    seg.names = blobs["names"].decode().split("\n") if blobs["names"] else []
    if not len(seg.names) == len(seg.lsub_total) == len(seg.lsub_first) == len(seg.lsub_last):
        raise ValueError("index subject tables disagree")
    seg.lsub_live = array("I", seg.lsub_total)
    seg.lmap = None
    seg.flags = bytearray(n)
    seg.tombs = _array("Q", blobs["tombs"])
    seg.ttl_seqs = _array("Q", blobs["ttl_seqs"])
    seg.ttl_exps = _array("q", blobs["ttl_exps"])
    seg.mark_floor, seg.mark_last_seq, seg.mark_last_ts = head["mark"]
    seg.max_seq, seg.max_seq_ts = head["max_seq"]
    seg.gaps = [(g[0], g[1]) for g in head["gaps"]]
    seg.min_ts, seg.max_ts, seg.ts_sorted = head["ts"]
    seg.live = n
    seg.live_bytes = head["bytes"]
    seg.size = head["size"]
    if framed:
        lo, off = _array("I", blobs["frame_lo"]), _array("I", blobs["frame_off"])
        if len(lo) != len(off) or not lo:
            raise ValueError("index frame table is malformed")
        seg.frames = FrameTable(lo, off, head["logical_size"], seg.size)
    seg.sealed = True
    seg.indexed = True
    return seg
