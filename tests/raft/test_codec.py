"""raft.codec: every message round-trips; garbage of any shape raises MalformedFrame."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft import codec
from raft.codec import MalformedFrame
from raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryType,
    InstallSnapshot,
    RequestVote,
    SnapshotResponse,
    TimeoutNow,
    VoteReject,
    VoteResponse,
)

G, A, B = "S-R3F-orders", "n1", "n2"
U64 = st.integers(0, 2**64 - 1)
NAME = st.text(min_size=0, max_size=12)

EXAMPLES = [
    AppendEntries(G, A, B, 7, 41, 6, 40, [Entry(7, 42, EntryType.NORMAL, b"hello"),
                                          Entry(7, 43, EntryType.NOOP, b""),
                                          Entry(7, 44, EntryType.CONFIG, b"\x00\x00")]),
    AppendEntries(G, A, B, 1, 0, 0, 0, []),
    AppendResponse(G, B, A, 7, True, 44, 0, 0, 3),
    AppendResponse(G, B, A, 7, False, 44, 30, 5, 2**64 - 1),
    RequestVote(G, A, B, 8, 44, 7, prevote=True),
    RequestVote(G, A, B, 8, 44, 7, transfer=True),
    VoteResponse(G, B, A, 8, False, True, VoteReject.CANNOT_VOUCH),
    VoteResponse(G, B, A, 8, True),
    InstallSnapshot(G, A, B, 9, 100, 8, ("n1", "n2", "n3"), 1000, 12345, 512, b"x" * 64, False),
    InstallSnapshot(G, A, B, 9, 100, 8, (), 0, 0, 0, b"", True),
    SnapshotResponse(G, B, A, 9, 100, 576, False, 4),
    TimeoutNow(G, A, B, 9),
    AppendEntries("\u00e9t\u00e9", "n\u00e9", B, 2, 0, 0, 0, []),  # names are UTF-8
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    frame = codec.encode(msg)
    assert codec.decode(frame) == msg
    assert codec.peek_group(frame) == msg.group
    assert codec.frame_length(frame[:4]) == len(frame)
    assert frame[4] == codec.VERSION


entries = st.lists(st.tuples(U64, st.sampled_from(list(EntryType)), st.binary(max_size=40)),
                   max_size=5)


@settings(max_examples=200, deadline=None)
@given(NAME, NAME, NAME, U64, st.integers(0, 2**63), U64, U64, entries)
def test_append_entries_round_trip(group, src, dst, term, prev, prev_term, commit, raw):
    msg = AppendEntries(group, src, dst, term, prev, prev_term, commit,
                        [Entry(t, prev + 1 + i, k, d) for i, (t, k, d) in enumerate(raw)])
    assert codec.decode(codec.encode(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(NAME, U64, U64, st.lists(NAME, max_size=5), U64, st.integers(0, 2**32 - 1), U64,
       st.booleans(), st.binary(max_size=100))
def test_snapshot_round_trip(group, term, index, voters, size, crc, offset, done, chunk):
    msg = InstallSnapshot(group, A, B, term, index, term, tuple(voters), size, crc, offset,
                          chunk, done)
    assert codec.decode(codec.encode(msg)) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_malformed(data):
    with pytest.raises(MalformedFrame):
        codec.decode(data)


@pytest.mark.parametrize("msg", EXAMPLES[:3], ids=lambda m: type(m).__name__)
def test_every_truncation_and_bit_flip_is_caught(msg):
    frame = codec.encode(msg)
    for n in range(len(frame)):
        with pytest.raises(MalformedFrame):
            codec.decode(frame[:n])
    with pytest.raises(MalformedFrame):
        codec.decode(frame + b"\x00")
    for pos in range(len(frame)):
        for bit in (0, 7):
            damaged = bytearray(frame)
            damaged[pos] ^= 1 << bit
            with pytest.raises(MalformedFrame):
                codec.decode(bytes(damaged))


def _reframe(body: bytes) -> bytes:
    """A frame with a correct length and checksum around an arbitrary body."""
    return struct.pack("<I", len(body) + 4) + body + struct.pack("<I", zlib.crc32(body))


def _body(msg) -> bytes:
    return codec.encode(msg)[4:-4]


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: bytes([2]) + b[1:], "unknown version"),
    (lambda b: b[:1] + bytes([99]) + b[2:], "unknown message type"),
    (lambda b: b + b"extra", "trailing bytes"),
    (lambda b: b[:-1], "truncated"),
])
def test_well_checksummed_but_invalid_bodies(mutate, reason):
    body = _body(AppendResponse(G, B, A, 7, True, 44, 0, 0, 3))
    with pytest.raises(MalformedFrame, match=reason):
        codec.decode(_reframe(mutate(body)))


def test_invalid_fields_with_valid_checksums():
    # An entry count far beyond what the frame holds must not allocate anything.
    body = bytearray(_body(AppendEntries(G, A, B, 1, 0, 0, 0, [])))
    body[-4:] = struct.pack("<I", 2**32 - 1)
    with pytest.raises(MalformedFrame, match="entry count"):
        codec.decode(_reframe(bytes(body)))
    # An unknown entry type.
    body = bytearray(_body(AppendEntries(G, A, B, 1, 0, 0, 0,
                                         [Entry(1, 1, EntryType.NORMAL, b"")])))
    body[-5] = 9
    with pytest.raises(MalformedFrame, match="entry type"):
        codec.decode(_reframe(bytes(body)))
    # A flag that is not 0/1, a reason that does not exist, bad UTF-8 in a name.
    body = bytearray(_body(VoteResponse(G, B, A, 1, True)))
    body[-3] = 2
    with pytest.raises(MalformedFrame, match="flag"):
        codec.decode(_reframe(bytes(body)))
    body = bytearray(_body(VoteResponse(G, B, A, 1, True)))
    body[-1] = 200
    with pytest.raises(MalformedFrame):
        codec.decode(_reframe(bytes(body)))
    body = bytearray(_body(TimeoutNow("ab", A, B, 1)))
    body[4] = 0xFF
    with pytest.raises(MalformedFrame, match="UTF-8"):
        codec.decode(_reframe(bytes(body)))


def test_absurd_length_is_refused_before_reading():
    with pytest.raises(MalformedFrame):
        codec.frame_length(struct.pack("<I", codec.MAX_FRAME + 1))
    assert codec.frame_length(b"\x01\x02") is None
