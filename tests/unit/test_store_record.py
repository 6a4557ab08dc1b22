"""The segment record codec and scanner: round trips, resynchronisation, damage never served."""

from __future__ import annotations

import dataclasses
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import record as rec
from storage.ranges import RangeSet
from storage.store import StoredMessage, new_message
from storage.subjects import normalize, normalized, subject_matches


def test_message_roundtrip_with_and_without_ttl():
    for ttl in (0, 5_000):
        raw = rec.encode_msg(7, 123, ttl, b"a.b", b"NATS/1.0\r\n\r\n", b"payload")
        msg = rec.decode_message(raw + b"trailing", 7)
        assert (msg.seq, msg.subject, msg.hdr, msg.data, msg.ts, msg.ttl) == \
            (7, "a.b", b"NATS/1.0\r\n\r\n", b"payload", 123, ttl)
        assert len(raw) == rec.OVERHEAD + (8 if ttl else 0) + 3 + 12 + 7


def test_erased_record_is_valid_zeroed_and_same_length():
    raw = rec.encode_msg(9, 1, 0, b"secret.subject", b"", b"secret")
    erased = rec.erased(raw)
    assert len(erased) == len(raw)
    r = rec.record_at(erased, 0, len(erased))
    assert r is not None and r.kind == rec.KIND_ERASED and r.seq == 9
    assert b"secret" not in erased


def test_markers_roundtrip():
    seqs = array("Q", [3, 9, 1 << 40])
    raw = rec.encode_del(seqs) + rec.encode_purge(50, 49, 777)
    items = list(rec.scan(raw, 0))
    assert [r.kind for r in items] == [rec.KIND_DEL, rec.KIND_PURGE]
    assert list(rec.del_seqs(raw, items[0])) == list(seqs)
    assert rec.purge_info(raw, items[1]) == (50, 49, 777)


def _records(n: int) -> tuple[bytes, list[int]]:
    parts, offsets, pos = [], [], 0
    for i in range(n):
        r = rec.encode_msg(i + 1, i, 0, b"s.%d" % (i % 3), b"", bytes([i % 256]) * (i % 40))
        parts.append(r)
        offsets.append(pos)
        pos += len(r)
    return b"".join(parts), offsets


def test_scan_resyncs_after_body_and_header_damage_and_flags_the_tail():
    buf, offsets = _records(10)
    damaged = bytearray(buf)
    damaged[offsets[3] + 30] ^= 0xFF  # body of record 4
    damaged[offsets[6] + 5] ^= 0x7F  # header length field of record 7
    torn = bytes(damaged) + buf[offsets[2]:offsets[2] + 20]
    items = list(rec.scan(torn, 0))
    seqs = [r.seq for r in items if isinstance(r, rec.Record)]
    assert seqs == [1, 2, 3, 5, 6, 8, 9, 10]
    damage = [d for d in items if isinstance(d, rec.Damage)]
    assert [(d.start, d.tail) for d in damage] == [(offsets[3], False), (offsets[6], False),
                                                  (len(buf), True)]


@settings(max_examples=200, deadline=None)
@given(st.integers(5, 30), st.data())
def test_scan_never_yields_a_damaged_record(n, data):
    buf, offsets = _records(n)
    bounds = [*offsets, len(buf)]
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(1, 255)),
                               min_size=1, max_size=3, unique_by=lambda flip: flip[0]))
    damaged = bytearray(buf)
    for pos, mask in flips:
        damaged[pos] ^= mask
    hit = {i for i in range(n) for pos, _ in flips if bounds[i] <= pos < bounds[i + 1]}
    seen = set()
    for item in rec.scan(bytes(damaged), 0):
        if isinstance(item, rec.Record):
            i = offsets.index(item.offset)  # only ever at a true record boundary
            assert i not in hit
            assert damaged[item.offset:item.offset + item.length] == \
                buf[offsets[i]:bounds[i + 1]]
            seen.add(i)
    assert seen == set(range(n)) - hit  # and every intact record is found again


def test_segment_header_roundtrip_and_damage():
    h = rec.SegmentHeader(3, 99, 10, 20, 30)
    raw = rec.encode_segment_header(h)
    assert rec.decode_segment_header(raw + b"x") == h
    assert rec.decode_segment_header(raw[:-1]) is None
    assert rec.decode_segment_header(b"\0" + raw[1:]) is None


def test_subject_filters():
    assert normalize((">",)) is None and normalize(("a", ">")) is None
    assert normalize(("b", "a", "b")) == ("a", "b")
    assert subject_matches("a.*", "a.b") and not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c") and not subject_matches("a.>", "a")
    assert subject_matches("*.x", "b.x") and not subject_matches("*.x", "x")


def test_range_set():
    r = RangeSet([(5, 7), (9, 9)])
    r.add(8, 8)
    assert r.ranges() == [(5, 9)]
    r.remove(6, 6)
    assert r.ranges() == [(5, 5), (7, 9)] and 7 in r and 6 not in r
    assert r.count() == 4 and r.first_at_or_after(6) == 7
    r.clip(8, 100)
    assert r.ranges() == [(8, 9)]


def test_decode_at_checks_like_decode_message_and_shares_the_subject():
    subject, hdr = "kv.ü", b"NATS/1.0\r\n\r\n"
    a = rec.encode_msg(7, 70, 0, subject.encode(), hdr, b"one")
    b = rec.encode_msg(8, 80, 5, subject.encode(), b"", b"two")
    buf = b"junk" + a + b
    first = rec.decode_at(buf, 4, 7, subject, subject.encode())
    assert first == rec.decode_message(a, 7) == StoredMessage(7, subject, hdr, b"one", 70)
    assert first.subject is subject  # the caller's str, not a new one
    second = rec.decode_at(buf, 4 + len(a), 8)  # no subject expected: decoded from the record
    assert second == StoredMessage(8, subject, b"", b"two", 80, 5) == rec.decode_message(b, 8)
    assert rec.decode_at(buf, 4, 7, "other", b"other").subject == subject
    with pytest.raises(rec.BadRecord):
        rec.decode_at(buf, 4, 8)  # another sequence
    with pytest.raises(rec.ShortRecord):
        rec.decode_at(buf[:-1], 4 + len(a), 8)  # cut: a longer read may hold it
    with pytest.raises(rec.ShortRecord):
        rec.decode_at(buf, len(buf) - 3, 8)
    damaged = bytearray(buf)
    damaged[4 + len(a) - 6] ^= 1
    with pytest.raises(rec.BadRecord):
        rec.decode_at(bytes(damaged), 4, 7)
    with pytest.raises(rec.BadRecord):
        rec.decode_at(rec.erased(a), 0, 7)  # an erased message is not served
    marker = rec.encode_purge(3, 9, 1)
    with pytest.raises(rec.BadRecord):
        rec.decode_at(marker, 0, 3)


def test_new_message_is_a_plain_stored_message():
    m = new_message(1, "a", b"h", b"d", 2, 3)
    plain = StoredMessage(1, "a", b"h", b"d", 2, 3)
    assert type(m) is StoredMessage and m == plain and hash(m) == hash(plain)
    assert repr(m) == repr(plain) and m.size == plain.size
    assert new_message(1, "a", b"", b"d", 2) == StoredMessage(1, "a", b"", b"d", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.seq = 5
    assert dataclasses.replace(m, seq=9) == StoredMessage(9, "a", b"h", b"d", 2, 3)


def test_normalized_filters_are_remembered():
    assert normalized(("b", "a", "b")) == ("a", "b") == normalize(("b", "a", "b"))
    assert normalized(("a", ">")) is None and normalized(">") is None and normalized(None) is None
    assert normalized(["x"]) == ("x",)  # unhashable: still answered
