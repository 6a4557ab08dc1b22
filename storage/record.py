"""The record codec of segment files. Pure: bytes in, values out; no I/O.

A segment file is a 52-byte segment header followed by records. Every record is

    kind u8 | flags u8 | subject_len u16 | hdr_len u32 | data_len u32 | seq u64 | ts i64
    [ttl i64, when flags & F_TTL] | subject | hdr | data | crc32 u32

little-endian, the CRC32 covering everything before it. Kinds:

* MSG: a message (`seq`, `ts` in ns, `ttl` in ns).
* ERASED: a message overwritten by `remove(erase=True)`: same lengths, body zeroed, new CRC.
* DEL: tombstones; `data` is a little-endian u64 array of deleted sequences (seq, ts: 0).
* PURGE: "every sequence below `seq` is gone"; `ts` is the last timestamp and `data` the u64
  last sequence at that moment (so a store emptied by a purge keeps its numbering).

`scan()` walks a buffer and reports valid records and damaged byte ranges; it resynchronises after
damage by trying the next record boundary given by the (possibly damaged) header, then by searching
for the next offset where a record with a valid CRC starts.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from storage.store import (
    FILE_HDR_OVERHEAD,
    FILE_MSG_OVERHEAD,
    StoredMessage,
    file_msg_size,
    new_message,
)

KIND_MSG = 0xB1
KIND_ERASED = 0xB2
KIND_DEL = 0xB3
KIND_PURGE = 0xB4
KINDS = frozenset((KIND_MSG, KIND_ERASED, KIND_DEL, KIND_PURGE))
F_TTL = 0x01

HEADER = struct.Struct("<BBHIIQq")
TTL = struct.Struct("<q")
CRC = struct.Struct("<I")
U64 = struct.Struct("<Q")
HEADER_SIZE = HEADER.size
TTL_SIZE = TTL.size
CRC_SIZE = CRC.size
_unpack_header = HEADER.unpack_from
_unpack_ttl = TTL.unpack_from
_unpack_crc = CRC.unpack_from
_crc32 = zlib.crc32
OVERHEAD = HEADER.size + CRC.size  # a message record without ttl: OVERHEAD + body
MAX_OVERHEAD = OVERHEAD + TTL.size
MAX_SUBJECT = 0xFFFF
MAX_BODY = 0xFFFFFFFF
MAX_DEL_SEQS = 1 << 16  # tombstones per DEL record, so one record stays small

_KIND_RE = re.compile(b"[\xb1-\xb4]")
_BIG_ENDIAN = sys.byteorder == "big"


class BadRecord(ValueError):
    """The bytes at an offset are not the expected valid record."""


class ShortRecord(BadRecord):
    """The record's header says it runs past the end of the bytes given: read more."""


def u64_array(raw: bytes) -> array:
    out = array("Q")
    out.frombytes(raw)
    if _BIG_ENDIAN:  # pragma: no cover - the file format is little-endian
        out.byteswap()
    return out


def u64_bytes(values: array) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover
        values = array("Q", values)
        values.byteswap()
    return values.tobytes()


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_msg(seq: int, ts: int, ttl: int, subject: bytes, hdr: bytes, data: bytes) -> bytes:
    if ttl:
        head = HEADER.pack(KIND_MSG, F_TTL, len(subject), len(hdr), len(data), seq, ts)
        head += TTL.pack(ttl)
    else:
        head = HEADER.pack(KIND_MSG, 0, len(subject), len(hdr), len(data), seq, ts)
    body = b"".join((head, subject, hdr, data))
    return body + CRC.pack(zlib.crc32(body))


def msg_length(size: int, has_hdr: int, has_ttl: bool) -> int:
    """The length on disk of a MSG record that counts `size` bytes (`Record.size`)."""
    return (size - FILE_MSG_OVERHEAD - (FILE_HDR_OVERHEAD if has_hdr else 0) + OVERHEAD
            + (TTL.size if has_ttl else 0))


# A MSG record is at most this much longer than its size: read size + READ_SLACK to get it whole.
READ_SLACK = OVERHEAD + TTL.size - FILE_MSG_OVERHEAD


def encode_del(seqs: array) -> bytes:
    payload = u64_bytes(seqs)
    body = HEADER.pack(KIND_DEL, 0, 0, 0, len(payload), 0, 0) + payload
    return body + CRC.pack(zlib.crc32(body))


def encode_purge(floor: int, last_seq: int, last_ts: int) -> bytes:
    body = HEADER.pack(KIND_PURGE, 0, 0, 0, U64.size, floor, last_ts) + U64.pack(last_seq)
    return body + CRC.pack(zlib.crc32(body))


def erased(record: bytes) -> bytes:
    """The ERASED form of a valid MSG record: same length and header lengths, body zeroed."""
    _kind, flags, s, h, d, seq, ts = HEADER.unpack_from(record)
    start = HEADER.size + (TTL.size if flags & F_TTL else 0)
    body = (HEADER.pack(KIND_ERASED, flags, s, h, d, seq, ts) + record[HEADER.size:start]
            + bytes(s + h + d))
    return body + CRC.pack(zlib.crc32(body))


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(slots=True)
class Record:
    kind: int
    seq: int
    ts: int
    ttl: int
    offset: int  # of the record in the scanned buffer
    length: int  # of the whole record
    body: int  # offset of the subject
    subject_len: int
    hdr_len: int
    data_len: int

    @property
    def size(self) -> int:
        """What a message record counts in the store's bytes (`store.file_msg_size`)."""
        return file_msg_size(self.subject_len, self.hdr_len, self.data_len)


def header_at(buf: bytes, off: int, end: int) -> Record | None:
    """A plausible record header at `off` whose record fits before `end`; no CRC check."""
    if off + HEADER.size > end:
        return None
    kind, flags, s, h, d, seq, ts = HEADER.unpack_from(buf, off)
    if kind not in KINDS or flags & ~F_TTL:
        return None
    ttl = 0
    body = off + HEADER.size
    if flags & F_TTL:
        if body + TTL.size > end:
            return None
        ttl = TTL.unpack_from(buf, body)[0]
        body += TTL.size
    length = body - off + s + h + d + CRC.size
    if off + length > end:
        return None
    return Record(kind, seq, ts, ttl, off, length, body, s, h, d)


def record_at(buf: bytes, off: int, end: int) -> Record | None:
    """The valid record at `off`, or None (implausible header, short, or CRC mismatch)."""
    rec = header_at(buf, off, end)
    if rec is None:
        return None
    crc_at = off + rec.length - CRC.size
    with memoryview(buf) as view:
        if zlib.crc32(view[off:crc_at]) != CRC.unpack_from(buf, crc_at)[0]:
            return None
    return rec


def decode_message(buf: bytes, seq: int) -> StoredMessage:
    """The MSG record for `seq` at the start of `buf` (which may run past the record)."""
    rec = record_at(buf, 0, len(buf))
    if rec is None:
        raise BadRecord("checksum mismatch or not a record")
    if rec.kind != KIND_MSG or rec.seq != seq:
        raise BadRecord(f"expected message {seq}, found kind {rec.kind:#x} seq {rec.seq}")
    a = rec.body
    b = a + rec.subject_len
    c = b + rec.hdr_len
    return StoredMessage(rec.seq, buf[a:b].decode(), buf[b:c], buf[c:c + rec.data_len],
                         rec.ts, rec.ttl)


def decode_at(buf: bytes, off: int, seq: int, subject: str = "",
              subject_raw: bytes = b"") -> StoredMessage:
    """The MSG record for `seq` at `off` in `buf` (which may run past it), checked as
    `decode_message` checks it, in one pass. `subject`/`subject_raw`: the subject the caller
    expects (str and UTF-8); when the record holds exactly those bytes the message shares that
    str instead of decoding a new one. Raises ShortRecord when `buf` ends before the record does
    (it may be whole in a longer read), BadRecord when it is not that valid record."""
    end = len(buf)
    if off + HEADER_SIZE > end:
        raise ShortRecord("not a whole record header")
    kind, flags, s, h, d, rseq, ts = _unpack_header(buf, off)
    body = off + HEADER_SIZE
    ttl = 0
    if flags:
        if flags != F_TTL:
            raise BadRecord(f"bad record flags {flags:#x}")
        if body + TTL_SIZE > end:
            raise ShortRecord("not a whole record header")
        ttl = _unpack_ttl(buf, body)[0]
        body += TTL_SIZE
    b = body + s
    c = b + h
    e = c + d
    if e + CRC_SIZE > end:
        if kind not in KINDS:
            raise BadRecord("not a record")
        raise ShortRecord(f"record of {e + CRC_SIZE - off} bytes, {end - off} given")
    with memoryview(buf) as view:
        ok = _crc32(view[off:e]) == _unpack_crc(buf, e)[0]
    if not ok:
        raise BadRecord("checksum mismatch or not a record")
    if kind != KIND_MSG or rseq != seq:
        raise BadRecord(f"expected message {seq}, found kind {kind:#x} seq {rseq}")
    if s != len(subject_raw) or not buf.startswith(subject_raw, body):
        subject = buf[body:b].decode()
    return new_message(seq, subject, buf[b:c] if h else b"", buf[c:e], ts, ttl)


def subject_of(buf: bytes, rec: Record) -> str:
    return buf[rec.body:rec.body + rec.subject_len].decode()


def payload_of(buf: bytes, rec: Record) -> bytes:
    start = rec.body + rec.subject_len + rec.hdr_len
    return buf[start:start + rec.data_len]


def del_seqs(buf: bytes, rec: Record) -> array:
    return u64_array(payload_of(buf, rec))


def purge_info(buf: bytes, rec: Record) -> tuple[int, int, int]:
    """(floor, last_seq, last_ts) of a PURGE record."""
    return rec.seq, U64.unpack_from(buf, rec.body)[0], rec.ts


# ---------------------------------------------------------------------------------------------
# Scanning


@dataclass(slots=True)
class Damage:
    """Bytes [start, end) that hold no valid record. `tail`: no valid record follows them."""

    start: int
    end: int
    tail: bool = False


def _chain_end(buf: bytes, pos: int, target: int, end: int) -> int:
    """Walk valid records laid end to end from `pos` while before `target`; where it stops."""
    while pos < target:
        rec = record_at(buf, pos, end)
        if rec is None:
            return pos
        pos += rec.length
    return pos


def _resync(buf: bytes, off: int, end: int, last_seq: int) -> int:
    """The offset of the next valid record after an invalid one at `off`, or `end`.

    The damaged record's own header may still give the next boundary. But a damaged length can
    also point past intact records to a later boundary, so a nearer valid record is preferred
    when the records from it lead to that same boundary, or stop at more damage before it while
    their sequence fits between the last good one and the one at that boundary (a lone false
    match inside a payload does neither)."""
    rec = header_at(buf, off, end)
    by_length = None
    if rec is not None:
        after = record_at(buf, off + rec.length, end)
        if after is not None:
            by_length = off + rec.length
            next_seq = after.seq if after.kind in (KIND_MSG, KIND_ERASED) else 1 << 64
    pos = off + 1
    while True:
        m = _KIND_RE.search(buf, pos, end if by_length is None else by_length)
        if m is None:
            return end if by_length is None else by_length
        q = m.start()
        cand = record_at(buf, q, end)
        if cand is not None:
            if by_length is None:
                return q
            stop = _chain_end(buf, q, by_length, end)
            if stop == by_length:
                return q
            in_order = cand.kind not in (KIND_MSG, KIND_ERASED) or last_seq < cand.seq < next_seq
            if stop < by_length and in_order:
                return q
        pos = q + 1


def scan(buf: bytes, start: int, end: int | None = None) -> Iterator[Record | Damage]:
    """Every valid record in buf[start:end] in order, and a Damage for each invalid stretch."""
    end = len(buf) if end is None else end
    off = start
    last_seq = 0
    while off < end:
        rec = record_at(buf, off, end)
        if rec is not None:
            if rec.kind in (KIND_MSG, KIND_ERASED):
                last_seq = rec.seq
            yield rec
            off += rec.length
            continue
        nxt = _resync(buf, off, end, last_seq)
        yield Damage(off, nxt, tail=nxt >= end)
        off = nxt


# ---------------------------------------------------------------------------------------------
# Segment file header (a framed segment has the same header with another magic)

SEGMENT_MAGIC = b"NBSEG\x00\x00\x01"
SEGMENT_MAGIC_FRAMED = b"NBSEGZ\x00\x01"  # compressed: frames follow (`storage.framing`)
SEGMENT_HEADER = struct.Struct("<8sQQQQq")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size + CRC.size


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    seg_id: int
    generation: int  # random per file version: ties an index file to the file it describes
    floor: int  # every sequence below it was gone when the segment was created
    next_seq: int  # the store's next sequence then: every record's seq in this file is >= it
    last_ts: int  # the store's last timestamp then
    framed: bool = False  # compressed: frames of records follow the header (`storage.framing`)


def encode_segment_header(h: SegmentHeader) -> bytes:
    magic = SEGMENT_MAGIC_FRAMED if h.framed else SEGMENT_MAGIC
    body = SEGMENT_HEADER.pack(magic, h.seg_id, h.generation, h.floor, h.next_seq, h.last_ts)
    return body + CRC.pack(zlib.crc32(body))


def decode_segment_header(buf: bytes) -> SegmentHeader | None:
    if len(buf) < SEGMENT_HEADER_SIZE:
        return None
    crc = CRC.unpack_from(buf, SEGMENT_HEADER.size)[0]
    if zlib.crc32(buf[:SEGMENT_HEADER.size]) != crc:
        return None
    magic, seg_id, generation, floor, next_seq, last_ts = SEGMENT_HEADER.unpack_from(buf)
    if magic != SEGMENT_MAGIC and magic != SEGMENT_MAGIC_FRAMED:
        return None
    return SegmentHeader(seg_id, generation, floor, next_seq, last_ts,
                         magic == SEGMENT_MAGIC_FRAMED)
