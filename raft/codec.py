"""Binary frames for Raft messages: no pickle, no JSON, a length, a version and a checksum.

    frame  = u32 length | body | u32 crc32(body)          length = len(body) + 4
    body   = u8 version | u8 type | str group | str src | str dst | u64 term | fields
    str    = u16 n | n bytes of UTF-8

Fields per type (all integers little-endian, unsigned):

    1 AppendEntries     u64 prev_index | u64 prev_term | u64 commit | u32 count |
                        count x (u64 term | u8 entry type | u32 n | n bytes)   (index implied)
    2 AppendResponse    u8 success | u64 index | u64 hint_index | u64 hint_term | u64 incarnation
    3 RequestVote       u64 last_index | u64 last_term | u8 flags (1 prevote, 2 transfer)
    4 VoteResponse      u8 granted | u8 prevote | u8 reason
    5 InstallSnapshot   u64 index | u64 snap_term | u16 voters x str | u64 size | u32 crc |
                        u64 offset | u8 done | u32 n | n bytes
    6 SnapshotResponse  u64 index | u64 offset | u8 done | u64 incarnation
    7 TimeoutNow        (nothing)

`decode` of anything else (short, long, wrong checksum, unknown version or type, trailing bytes,
bad UTF-8, out-of-range values) raises `MalformedFrame`; the driver drops and counts those. The
checksum covers the frame in transit (reliability rule 2); log records carry their own on disk.
"""

from __future__ import annotations

import struct
import zlib

from raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryType,
    InstallSnapshot,
    Message,
    RequestVote,
    SnapshotResponse,
    TimeoutNow,
    VoteReject,
    VoteResponse,
)

VERSION = 1
MAX_FRAME = 256 << 20  # refuse absurd lengths before allocating anything

T_APPEND, T_APPEND_RESP, T_VOTE, T_VOTE_RESP, T_SNAP, T_SNAP_RESP, T_TIMEOUT = range(1, 8)

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEAD = struct.Struct("<BB")
_APPEND = struct.Struct("<QQQI")
_ENTRY = struct.Struct("<QBI")
_APPEND_RESP = struct.Struct("<BQQQQ")
_VOTE = struct.Struct("<QQB")
_VOTE_RESP = struct.Struct("<BBB")
_SNAP_A = struct.Struct("<QQH")
_SNAP_B = struct.Struct("<QIQBI")
_SNAP_RESP = struct.Struct("<QQBQ")
_ENTRY_TYPES = frozenset(int(t) for t in EntryType)
_REASONS = frozenset(int(r) for r in VoteReject)


class MalformedFrame(ValueError):
    """The bytes are not a frame this version understands; nothing was decoded."""


def _str(s: str) -> bytes:
    raw = s.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long: {len(raw)} bytes")
    return _U16.pack(len(raw)) + raw


def encode(msg: Message) -> bytes:
    """The frame for `msg` (see the module docstring)."""
    parts: list[bytes] = []
    if isinstance(msg, AppendEntries):
        kind = T_APPEND
        parts.append(_APPEND.pack(msg.prev_index, msg.prev_term, msg.commit, len(msg.entries)))
        for e in msg.entries:
            parts.append(_ENTRY.pack(e.term, e.type, len(e.data)))
            parts.append(e.data)
    elif isinstance(msg, AppendResponse):
        kind = T_APPEND_RESP
        parts.append(_APPEND_RESP.pack(msg.success, msg.index, msg.hint_index, msg.hint_term,
                                       msg.incarnation))
    elif isinstance(msg, RequestVote):
        kind = T_VOTE
        parts.append(_VOTE.pack(msg.last_index, msg.last_term,
                                (1 if msg.prevote else 0) | (2 if msg.transfer else 0)))
    elif isinstance(msg, VoteResponse):
        kind = T_VOTE_RESP
        parts.append(_VOTE_RESP.pack(msg.granted, msg.prevote, msg.reason))
    elif isinstance(msg, InstallSnapshot):
        kind = T_SNAP
        parts.append(_SNAP_A.pack(msg.index, msg.snap_term, len(msg.voters)))
        parts.extend(_str(v) for v in msg.voters)
        parts.append(_SNAP_B.pack(msg.size, msg.crc, msg.offset, msg.done, len(msg.chunk)))
        parts.append(msg.chunk)
    elif isinstance(msg, SnapshotResponse):
        kind = T_SNAP_RESP
        parts.append(_SNAP_RESP.pack(msg.index, msg.offset, msg.done, msg.incarnation))
    elif isinstance(msg, TimeoutNow):
        kind = T_TIMEOUT
    else:
        raise TypeError(f"not a Raft message: {type(msg).__name__}")
    body = b"".join([_HEAD.pack(VERSION, kind), _str(msg.group), _str(msg.src), _str(msg.dst),
                     _U64.pack(msg.term), *parts])
    return _U32.pack(len(body) + 4) + body + _U32.pack(zlib.crc32(body))


class _Reader:
    """Bounds-checked reads over the body; every overrun is a MalformedFrame."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: memoryview, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > self.end:
            raise MalformedFrame("truncated field")
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, st: struct.Struct) -> tuple:
        if self.pos + st.size > self.end:
            raise MalformedFrame("truncated field")
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def string(self) -> str:
        (n,) = self.unpack(_U16)
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError:
            raise MalformedFrame("bad UTF-8 in a name") from None


def _check(frame: bytes | bytearray | memoryview) -> memoryview:
    """The body of a well-formed frame (length and checksum verified)."""
    view = memoryview(frame)
    if len(view) < 4 + _HEAD.size + 4:
        raise MalformedFrame(f"{len(view)} bytes is too short for a frame")
    (length,) = _U32.unpack_from(view, 0)
    if length > MAX_FRAME or length != len(view) - 4:
        raise MalformedFrame(f"length field {length} does not match {len(view) - 4} bytes")
    body = view[4:len(view) - 4]
    (crc,) = _U32.unpack_from(view, len(view) - 4)
    if zlib.crc32(body) != crc:
        raise MalformedFrame("checksum mismatch")
    if body[0] != VERSION:
        raise MalformedFrame(f"unknown version {body[0]}")
    return body


def frame_length(prefix: bytes | bytearray | memoryview) -> int | None:
    """For a stream reader: the total size of the frame starting at `prefix` (None if fewer
    than 4 bytes are available). Raises MalformedFrame on an absurd length."""
    if len(prefix) < 4:
        return None
    (length,) = _U32.unpack_from(prefix, 0)
    if length > MAX_FRAME or length < _HEAD.size + 4:
        raise MalformedFrame(f"bad length field {length}")
    return length + 4


def peek_group(frame: bytes | bytearray | memoryview) -> str:
    """The group a frame belongs to (for demultiplexing), checksum verified."""
    body = _check(frame)
    return _Reader(body, _HEAD.size, len(body)).string()


def decode(frame: bytes | bytearray | memoryview) -> Message:
    """The message in `frame`; MalformedFrame if it is not exactly one valid frame."""
    body = _check(frame)
    kind = body[1]
    r = _Reader(body, _HEAD.size, len(body))
    group, src, dst = r.string(), r.string(), r.string()
    (term,) = r.unpack(_U64)
    msg: Message
    if kind == T_APPEND:
        prev_index, prev_term, commit, count = r.unpack(_APPEND)
        if count > (r.end - r.pos) // _ENTRY.size:
            raise MalformedFrame("entry count exceeds the frame")
        entries = []
        for i in range(count):
            e_term, e_type, n = r.unpack(_ENTRY)
            if e_type not in _ENTRY_TYPES:
                raise MalformedFrame(f"unknown entry type {e_type}")
            entries.append(Entry(e_term, prev_index + 1 + i, EntryType(e_type),
                                 bytes(r.take(n))))
        msg = AppendEntries(group, src, dst, term, prev_index, prev_term, commit, entries)
    elif kind == T_APPEND_RESP:
        success, index, hint_index, hint_term, incarnation = r.unpack(_APPEND_RESP)
        if success > 1:
            raise MalformedFrame("bad flag")
        msg = AppendResponse(group, src, dst, term, bool(success), index, hint_index, hint_term,
                             incarnation)
    elif kind == T_VOTE:
        last_index, last_term, flags = r.unpack(_VOTE)
        if flags > 3:
            raise MalformedFrame("bad flags")
        msg = RequestVote(group, src, dst, term, last_index, last_term, bool(flags & 1),
                          bool(flags & 2))
    elif kind == T_VOTE_RESP:
        granted, prevote, reason = r.unpack(_VOTE_RESP)
        if granted > 1 or prevote > 1 or reason not in _REASONS:
            raise MalformedFrame("bad flag")
        msg = VoteResponse(group, src, dst, term, bool(granted), bool(prevote),
                           VoteReject(reason))
    elif kind == T_SNAP:
        index, snap_term, nvoters = r.unpack(_SNAP_A)
        voters = tuple(r.string() for _ in range(nvoters))
        size, crc, offset, done, n = r.unpack(_SNAP_B)
        if done > 1:
            raise MalformedFrame("bad flag")
        msg = InstallSnapshot(group, src, dst, term, index, snap_term, voters, size, crc, offset,
                              bytes(r.take(n)), bool(done))
    elif kind == T_SNAP_RESP:
        index, offset, done, incarnation = r.unpack(_SNAP_RESP)
        if done > 1:
            raise MalformedFrame("bad flag")
        msg = SnapshotResponse(group, src, dst, term, index, offset, bool(done), incarnation)
    elif kind == T_TIMEOUT:
        msg = TimeoutNow(group, src, dst, term)
    else:
        raise MalformedFrame(f"unknown message type {kind}")
    if r.pos != r.end:
        raise MalformedFrame(f"{r.end - r.pos} trailing bytes")
    return msg
