"""The on-disk formats of a Raft log directory, as pure functions (no I/O).

`raft.log.RaftLog` and the simulator's disk both use these, so the recovery rules tested under
simulated crashes are the ones that run on real files.

Segment files `seg-<n>` hold records:

    record = u32 length | u32 crc32(length field + body) | body        (length = len(body) >= 1)
    body   = u8 kind | fields
      1 HEADER    u32 magic "RLOG" | u16 version | u64 segment number     (first record)
      2 ENTRY     u64 term | u64 index | u8 entry type | data
      3 TRUNCATE  u64 index   entries >= index written before this record are void
      4 COMMIT    u64 index   the commit index was known to be at least this
      5 RESET     u64 index | u64 term   everything before is void: the log continues after a
                                         snapshot at (index, term)

A zeroed region reads as length 0 and is rejected (crc32 of nothing is 0, so the length rule is
what catches it). Reading stops at the first record that is incomplete or fails its checksum.

Other files (all written with `storage.durable.write_checked` except `vouch`):

    hardstate.a, hardstate.b   u64 term | u64 boot | u8 flags (1: amnesia) | str vote
    snapshot                   u64 index | u64 term | voters | data
    vouch                      two 40-byte slots, written in place alternately:
                               u32 magic "VOUC" | u64 seq | u64 index | u64 term | u64 boot |
                               u32 crc32           (the mark: the last entry made durable)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from raft.membership import decode_voters, encode_voters
from raft.messages import Entry, EntryType
from raft.state import HardState, SnapshotMeta

HEADER, ENTRY, TRUNCATE, COMMIT, RESET = 1, 2, 3, 4, 5
MAGIC = 0x474F4C52  # "RLOG"
FORMAT_VERSION = 1
MAX_RECORD = 1 << 30

_HEAD = struct.Struct("<II")
_LEN = struct.Struct("<I")
_HEADER = struct.Struct("<BIHQ")
_ENTRY = struct.Struct("<BQQB")
_ONE = struct.Struct("<BQ")
_TWO = struct.Struct("<BQQ")
_ENTRY_TYPES = frozenset(int(t) for t in EntryType)


def _record(body: bytes) -> bytes:
    length = _LEN.pack(len(body))
    return length + _LEN.pack(zlib.crc32(body, zlib.crc32(length))) + body


def header_record(segment: int) -> bytes:
    return _record(_HEADER.pack(HEADER, MAGIC, FORMAT_VERSION, segment))


def entry_record(e: Entry) -> bytes:
    return _record(_ENTRY.pack(ENTRY, e.term, e.index, e.type) + e.data)


def truncate_record(index: int) -> bytes:
    return _record(_ONE.pack(TRUNCATE, index))


def commit_record(index: int) -> bytes:
    return _record(_ONE.pack(COMMIT, index))


def reset_record(index: int, term: int) -> bytes:
    return _record(_TWO.pack(RESET, index, term))


@dataclass
class Scan:
    records: list[tuple]  # (kind, ...fields)
    offsets: list[int]  # where each record starts
    good: int  # length of the valid prefix
    error: str = ""  # why reading stopped before the end ("" when it did not)


def _parse(body: bytes) -> tuple | None:
    kind = body[0]
    if kind == ENTRY and len(body) >= _ENTRY.size:
        _, term, index, etype = _ENTRY.unpack_from(body)
        if etype not in _ENTRY_TYPES:
            return None
        return (ENTRY, Entry(term, index, EntryType(etype), bytes(body[_ENTRY.size:])))
    if kind in (TRUNCATE, COMMIT) and len(body) == _ONE.size:
        return (kind, _ONE.unpack(body)[1])
    if kind == RESET and len(body) == _TWO.size:
        _, index, term = _TWO.unpack(body)
        return (RESET, index, term)
    if kind == HEADER and len(body) == _HEADER.size:
        _, magic, version, segment = _HEADER.unpack(body)
        if magic != MAGIC or version != FORMAT_VERSION:
            return None
        return (HEADER, segment)
    return None


def scan(data: bytes) -> Scan:
    """Every valid record from the start of a segment, up to the first bad one."""
    records: list[tuple] = []
    offsets: list[int] = []
    pos, n = 0, len(data)
    view = memoryview(data)
    while pos < n:
        if pos + _HEAD.size > n:
            return Scan(records, offsets, pos, "incomplete record header")
        length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if length == 0 or length > MAX_RECORD:
            return Scan(records, offsets, pos, f"bad record length {length}")
        if end > n:
            return Scan(records, offsets, pos, "incomplete record")
        body = view[pos + _HEAD.size:end]
        if zlib.crc32(body, zlib.crc32(view[pos:pos + 4])) != crc:
            return Scan(records, offsets, pos, "record checksum mismatch")
        parsed = _parse(bytes(body))
        if parsed is None:
            return Scan(records, offsets, pos, "unknown record")
        records.append(parsed)
        offsets.append(pos)
        pos = end
    return Scan(records, offsets, pos)


@dataclass
class Damage:
    """Where a segment stops being readable."""

    segment: str
    offset: int
    reason: str


@dataclass
class Replayed:
    """The log as the segments describe it, before the snapshot is applied to it."""

    entries: list[Entry] = field(default_factory=list)
    base_index: int = 0  # entries start at base_index + 1
    base_term: int | None = 0  # None: unknown (older segments were compacted away)
    commit: int = 0
    damage: Damage | None = None  # reading stopped here; later segments were not read
    segments_read: list[str] = field(default_factory=list)  # up to and including the damage
    seg_max: dict[str, int] = field(default_factory=dict)  # highest entry index per segment

    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        if index == self.base_index:
            return self.base_term
        if self.base_index < index <= self.last_index:
            return self.entries[index - self.base_index - 1].term
        return None


def replay(segments: list[tuple[str, bytes]]) -> Replayed:
    """Replay segments (in order) into one contiguous log."""
    out = Replayed()
    started = False
    for name, data in segments:
        out.segments_read.append(name)
        result = scan(data)
        for rec, offset in zip(result.records, result.offsets, strict=True):
            kind = rec[0]
            if kind == ENTRY:
                e: Entry = rec[1]
                if not started:  # older segments were compacted away
                    out.base_index, out.base_term, started = e.index - 1, None, True
                if e.index != out.last_index + 1:
                    # Writers never produce this (a TRUNCATE precedes any rewrite): it is damage.
                    out.damage = Damage(name, offset, f"entry {e.index} after {out.last_index}")
                    return out
                out.entries.append(e)
                out.seg_max[name] = max(out.seg_max.get(name, 0), e.index)
            elif kind == TRUNCATE:
                if rec[1] - 1 < out.base_index:
                    # It also cut entries of a segment compacted away since: the log now
                    # continues from before our first entry, after an entry we no longer see.
                    out.entries, out.base_index, out.base_term = [], rec[1] - 1, None
                    started = True
                else:
                    del out.entries[rec[1] - out.base_index - 1:]
            elif kind == COMMIT:
                out.commit = max(out.commit, rec[1])
            elif kind == RESET:
                out.entries, out.base_index, out.base_term, started = [], rec[1], rec[2], True
            # HEADER records only identify the segment.
        if result.error:
            out.damage = Damage(name, result.good, result.error)
            return out
    return out


@dataclass
class Joined:
    entries: list[Entry]  # what continues the snapshot
    reset: bool  # the files do not continue the snapshot: write a RESET before appending
    problem: str  # why entries had to be dropped ("" when nothing the node relied on was)


def join(stream: Replayed, meta: SnapshotMeta | None) -> Joined:
    """The entries that continue the snapshot `meta` (all of `stream` without one). The stream
    must contain the snapshot's last entry with the same term (or start right after it), else
    it belongs to a history the snapshot replaced."""
    if meta is None:
        if stream.base_index == 0:
            return Joined(stream.entries, False, "")
        return Joined([], True, "log starts after a compaction but there is no snapshot")
    si, st = meta.index, meta.term
    if si < stream.base_index:
        return Joined([], True, "log starts after the snapshot")
    if si > stream.last_index:
        # A snapshot installed just before a crash, before the RESET that follows it was durable
        # (or the log lost its end: the vouch mark tells). Nothing after it to keep; the files
        # must say where the log continues before anything is appended.
        return Joined([], True, "")
    term = stream.term_at(si)
    if term is None and si == stream.base_index:
        term = st  # compacted exactly at a segment boundary: the stream continues the snapshot
    if term != st:
        return Joined([], True, "log disagrees with the snapshot")
    return Joined(stream.entries[si - stream.base_index:], False, "")


# Hard state ------------------------------------------------------------------------------------

_HS = struct.Struct("<QQB")
AMNESIA = 1


def encode_hard_state(hs: HardState, boot: int, amnesia: bool) -> bytes:
    vote = (hs.vote or "").encode()
    return _HS.pack(hs.term, boot, AMNESIA if amnesia else 0) + vote


def decode_hard_state(payload: bytes) -> tuple[HardState, int, bool]:
    if len(payload) < _HS.size:
        raise ValueError("short hard state")
    term, boot, flags = _HS.unpack_from(payload)
    vote = payload[_HS.size:].decode() or None
    return HardState(term, vote), boot, bool(flags & AMNESIA)


# Snapshot file ---------------------------------------------------------------------------------

_SNAP = struct.Struct("<QQ")


def encode_snapshot(meta: SnapshotMeta, data: bytes) -> bytes:
    voters = encode_voters(meta.voters)
    return _SNAP.pack(meta.index, meta.term) + _LEN.pack(len(voters)) + voters + data


def decode_snapshot(payload: bytes) -> tuple[SnapshotMeta, bytes]:
    if len(payload) < _SNAP.size + 4:
        raise ValueError("short snapshot")
    index, term = _SNAP.unpack_from(payload)
    (n,) = _LEN.unpack_from(payload, _SNAP.size)
    start = _SNAP.size + 4
    voters = decode_voters(payload[start:start + n])
    return SnapshotMeta(index, term, voters), payload[start + n:]


# Vouch slots -----------------------------------------------------------------------------------

VOUCH_MAGIC = 0x43554F56  # "VOUC"
_SLOT = struct.Struct("<IQQQQ")
SLOT_SIZE = _SLOT.size + 4  # 40


@dataclass(frozen=True)
class Mark:
    seq: int
    index: int
    term: int
    boot: int


def encode_slot(m: Mark) -> bytes:
    body = _SLOT.pack(VOUCH_MAGIC, m.seq, m.index, m.term, m.boot)
    return body + _LEN.pack(zlib.crc32(body))


def decode_slots(data: bytes) -> tuple[Mark | None, bool]:
    """The newest valid slot, and whether every slot was damaged. One bad slot is what a write
    torn by a crash leaves (its fsync never completed, so its mark was never relied on)."""
    best: Mark | None = None
    bad = 0
    for i in range(2):
        raw = data[i * SLOT_SIZE:(i + 1) * SLOT_SIZE]
        if len(raw) != SLOT_SIZE:
            bad += 1
            continue
        body = raw[:_SLOT.size]
        (crc,) = _LEN.unpack_from(raw, _SLOT.size)
        magic, seq, index, term, boot = _SLOT.unpack(body)
        if magic != VOUCH_MAGIC or zlib.crc32(body) != crc:
            bad += 1
            continue
        if best is None or seq > best.seq:
            best = Mark(seq, index, term, boot)
    return best, best is None and bad > 0
