"""FileStore compression (`StoreConfig.compression` "s2"): framed segments (`storage.framing`).

Round trips, the disk actually shrinking, damage in compressed frames never served (found at open
and on read), truncation and crashes at every step of a compression, stores switching between
compressed and uncompressed, erase and compaction of framed segments, and the model test of
test_store_model run again with compression on (and switched on and off as it runs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import struct
import zlib
from dataclasses import replace

import pytest

from storage import (
    CorruptRecord,
    FileStore,
    FileStoreOptions,
    StoreConfig,
    durable,
    framing,
    record,
    segindex,
)
from storage.filestore import syncjob
from storage.framing import FRAME_HEAD_SIZE, Codecs

S2 = StoreConfig("t", compression="s2")
PLAIN = StoreConfig("t")
# Small segments of several frames each.
OPTS = FileStoreOptions(segment_bytes=8192, frame_bytes=1024, cache_bytes=512, flush_bytes=256)


def event(seq: int, size: int = 200) -> bytes:
    """A JSON event of about `size` bytes: compressible as real ones are, different per seq."""
    rng = random.Random(seq)
    doc = {"id": f"{rng.getrandbits(64):016x}", "type": "order.created", "seq": seq,
           "customer": {"tier": rng.choice(["gold", "silver"]), "country": "DE"}, "items": []}
    while len(json.dumps(doc)) < size:
        doc["items"].append({"sku": f"SKU-{rng.randint(10000, 99999)}", "qty": rng.randint(1, 5),
                             "price": round(rng.uniform(1, 500), 2), "currency": "EUR"})
    return json.dumps(doc, separators=(",", ":")).encode()


def hdr(seq: int) -> bytes:
    return f"NATS/1.0\r\nNats-Msg-Id: m-{seq}\r\n\r\n".encode() if seq % 3 == 0 else b""


def subject(seq: int) -> str:
    return ("orders.eu", "orders.us", "größe.ß")[seq % 3]


def sync(store: FileStore) -> None:
    job = store.begin_sync()
    if job is not None:
        job.run()
        store.finish_sync(job)


def fill(store: FileStore, n: int, every: int = 10, size: int = 200) -> None:
    for _ in range(n):
        seq = store.last_seq + 1
        assert store.store_msg(subject(seq), hdr(seq), event(seq, size), 1_000 + seq) == seq
        if seq % every == 0:
            sync(store)


def check(store: FileStore, seqs, size: int = 200) -> None:
    for seq in seqs:
        m = store.load(seq)
        assert m is not None, seq
        assert (m.subject, m.hdr, m.data, m.ts) == (subject(seq), hdr(seq), event(seq, size),
                                                      1_000 + seq), seq


def seg_files(path) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".seg"))


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def is_framed(path: str) -> bool:
    return read(path).startswith(record.SEGMENT_MAGIC_FRAMED)


def logical(path: str) -> bytes:
    buf = read(path)
    if framing.looks_framed(buf):
        buf = framing.unframe(buf, Codecs()).logical
    return buf


def frame_seqs(path: str) -> list[list[int]]:
    """The message sequences of each frame of a framed segment file."""
    u = framing.unframe(read(path), Codecs())
    bounds = [*u.table.lo, u.table.end]
    out: list[list[int]] = [[] for _ in u.table.lo]
    for r in record.scan(u.logical, record.SEGMENT_HEADER_SIZE):
        if isinstance(r, record.Record) and r.kind == record.KIND_MSG:
            k = max(i for i, lo in enumerate(bounds[:-1]) if lo <= r.offset)
            out[k].append(r.seq)
    return out


def flip(path: str, offset: int, mask: int = 0x10) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def disk_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in seg_files(path))


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "store")


def make(store_dir, n=200, config=S2, opts=OPTS, size=200) -> None:
    fs = FileStore(store_dir, config, opts)
    fill(fs, n, size=size)
    fs.close()


# ---------------------------------------------------------------------------------------------
# The frame codec


def offsets(logical_bytes: bytes) -> list[int]:
    return [r.offset for r in record.scan(logical_bytes, record.SEGMENT_HEADER_SIZE)]


def test_runs_cut_at_record_starts():
    starts = [52, 100, 150, 400, 410, 420, 2000]
    assert framing.runs(starts, 52, 2100, 100) == [
        (52, 150), (150, 400), (400, 420), (420, 2000), (2000, 2100)]
    assert framing.runs(starts, 52, 2100, 5000) == [(52, 2100)]
    assert framing.runs([], 52, 300, 10) == [(52, 300)]
    assert framing.runs([52], 52, 300, 10) == [(52, 300)]


def test_frames_round_trip_and_cut_at_record_boundaries():
    recs = [record.encode_msg(s, s, 0, b"a.b", hdr(s), event(s, 300)) for s in range(1, 60)]
    header = record.encode_segment_header(record.SegmentHeader(1, 7, 1, 1, 0, True))
    logical_bytes = header + b"".join(recs)
    starts = offsets(logical_bytes)
    framed, table = framing.frame_segment(header, logical_bytes, starts, framing.CODEC_ZSTD,
                                          1000, Codecs())
    assert len(table.lo) > 5 and table.end == len(logical_bytes) and table.size == len(framed)
    assert len(framed) < len(logical_bytes) / 2
    u = framing.unframe(framed, Codecs())
    assert u.logical == logical_bytes and u.damaged == []
    assert list(u.table.lo) == list(table.lo) and list(u.table.off) == list(table.off)
    starts = {r.offset for r in record.scan(logical_bytes, record.SEGMENT_HEADER_SIZE)}
    assert set(table.lo) <= starts  # every frame starts at a record


def test_incompressible_frames_are_stored_and_still_checked():
    rng = random.Random(1)
    recs = [record.encode_msg(s, s, 0, b"x", b"", rng.randbytes(700)) for s in range(1, 9)]
    header = record.encode_segment_header(record.SegmentHeader(1, 7, 1, 1, 0, True))
    logical_bytes = header + b"".join(recs)
    framed, _ = framing.frame_segment(header, logical_bytes, offsets(logical_bytes),
                                      framing.CODEC_ZSTD, 2000, Codecs())
    head = framing.frame_head(framed, record.SEGMENT_HEADER_SIZE)
    assert head is not None and head.codec == framing.CODEC_STORED
    flip_at = record.SEGMENT_HEADER_SIZE + FRAME_HEAD_SIZE + 100
    bad = framed[:flip_at] + bytes([framed[flip_at] ^ 1]) + framed[flip_at + 1:]
    with pytest.raises(framing.BadFrame):
        framing.decode_frame(bad, record.SEGMENT_HEADER_SIZE, Codecs())


@pytest.mark.parametrize("where", ["header", "data", "cut"])
def test_unframe_turns_a_damaged_frame_into_zeros(where):
    recs = [record.encode_msg(s, s, 0, b"a", b"", event(s, 300)) for s in range(1, 40)]
    header = record.encode_segment_header(record.SegmentHeader(1, 7, 1, 1, 0, True))
    logical_bytes = header + b"".join(recs)
    framed, table = framing.frame_segment(header, logical_bytes, offsets(logical_bytes),
                                          framing.CODEC_ZSTD, 1500, Codecs())
    k = 2
    if where == "cut":
        framed = framed[:table.off[k] + 30]
    else:
        at = table.off[k] + (4 if where == "header" else FRAME_HEAD_SIZE + 5)
        framed = framed[:at] + bytes([framed[at] ^ 0x40]) + framed[at + 1:]
    u = framing.unframe(framed, Codecs())
    assert len(u.damaged) == 1 and u.damaged[0][0] == table.off[k]
    lo = table.lo[k]
    if where == "cut":
        assert u.logical[:lo] == logical_bytes[:lo] and u.logical[lo:] == b"\x00"
    else:
        hi = table.lo[k + 1]
        assert u.logical[:lo] == logical_bytes[:lo] and u.logical[hi:] == logical_bytes[hi:]
        assert u.logical[lo:hi] == bytes(hi - lo)
    assert k not in [i for i, off in enumerate(u.table.off) if off == table.off[k]]


def test_unknown_compression_is_refused(store_dir):
    with pytest.raises(ValueError, match="unknown compression"):
        FileStore(store_dir, StoreConfig("t", compression="lz5"), OPTS)


# ---------------------------------------------------------------------------------------------
# Round trips and disk usage


def test_round_trip_every_read_path_and_reopen(store_dir):
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 300)
    fs.store_msg("ttl.x", b"", event(301), 1_301, ttl=10**15)
    sync(fs)
    framed = [p for p in seg_files(store_dir) if is_framed(p)]
    assert len(framed) >= len(seg_files(store_dir)) - 2  # all sealed ones (the active is plain)
    check(fs, range(1, 301))
    batch = fs.load_batch(1, max_msgs=1000)
    assert [m.seq for m in batch] == list(range(1, 302))
    assert [m.seq for m in fs.load_batch(5, ("orders.us",), 20)] == list(range(7, 66, 3))
    assert fs.load_next(102, ("größe.ß",)).seq == 104
    assert fs.load_last(("orders.eu",)).seq == 300
    expected = (fs.state(), fs.subjects(), fs.deleted())
    fs.close()
    for verify in (True, False):
        fs = FileStore(store_dir, S2, replace(OPTS, verify_segments=verify))
        assert (fs.state(), fs.subjects(), fs.deleted()) == expected
        check(fs, reversed(range(1, 301)))
        assert fs.load(301).ttl == 10**15
        assert [m.seq for m in fs.load_batch(1, max_msgs=1000)] == list(range(1, 302))
        fs.close()


def test_indexes_of_framed_segments_are_rebuilt_by_scanning(store_dir, caplog):
    make(store_dir, 200)
    fs = FileStore(store_dir, S2, OPTS)
    expected = (fs.state(), fs.subjects(), fs.deleted())
    fs.close()
    for name in os.listdir(store_dir):
        if name.endswith(".idx"):
            os.unlink(os.path.join(store_dir, name))
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = FileStore(store_dir, S2, OPTS)
    assert "rebuilding" in caplog.text
    assert (fs.state(), fs.subjects(), fs.deleted()) == expected
    check(fs, range(1, 201))
    fs.close()


def test_disk_usage_shrinks_for_compressible_data(tmp_path):
    opts = FileStoreOptions()  # the defaults: 8 MiB segments, 64 KiB frames
    sizes = {}
    for name, config in (("plain", PLAIN), ("s2", S2)):
        path = str(tmp_path / name)
        fs = FileStore(path, config, opts)
        for seq in range(1, 12_001):  # ~13 MB of 128 B - 2 KiB JSON events
            fs.store_msg(subject(seq), hdr(seq), event(seq, 128 + (seq * 7919) % 1900), seq)
            if seq % 256 == 0:
                sync(fs)
        fs.close()
        sizes[name] = disk_bytes(path)
        fs = FileStore(path, config, opts)
        m = fs.load(5000)
        assert m is not None and m.data == event(5000, 128 + (5000 * 7919) % 1900)
        fs.close()
    assert sizes["s2"] < 0.5 * sizes["plain"], sizes


def test_incompressible_segments_stay_plain_and_indexed(store_dir, caplog):
    fs = FileStore(store_dir, S2, OPTS)
    rng = random.Random(3)
    data = {}
    with caplog.at_level(logging.INFO, logger="storage"):
        for seq in range(1, 80):
            data[seq] = rng.randbytes(300)
            fs.store_msg("r", b"", data[seq], seq)
        fs.close()
    assert "stays uncompressed" in caplog.text
    assert not any(is_framed(p) for p in seg_files(store_dir))
    indexes = [n for n in os.listdir(store_dir) if n.endswith(".idx")]
    assert len(indexes) == len(seg_files(store_dir)) - 1 >= 3  # every sealed one
    fs = FileStore(store_dir, S2, OPTS)
    assert all(fs.load(s).data == d for s, d in data.items())
    fs.close()


# ---------------------------------------------------------------------------------------------
# Damage is never served


@pytest.mark.parametrize("where", ["data", "header"])
def test_damaged_frame_is_found_at_open_and_never_served(store_dir, caplog, where):
    make(store_dir, 200)
    path = [p for p in seg_files(store_dir) if is_framed(p)][1]
    table = framing.unframe(read(path), Codecs()).table
    lost = frame_seqs(path)[1]
    flip(path, table.off[1] + (FRAME_HEAD_SIZE + 10 if where == "data" else 12))
    with caplog.at_level(logging.ERROR, logger="storage"):
        fs = FileStore(store_dir, S2, OPTS)
    assert "damaged frames" in caplog.text
    assert fs.state().damaged == [(lost[0], lost[-1])]
    for seq in lost:
        with pytest.raises(CorruptRecord):
            fs.load(seq)
    check(fs, [s for s in range(1, 201) if s not in lost])
    batch = fs.load_batch(1, max_msgs=1000)
    assert [m.seq for m in batch] == list(range(1, lost[0]))  # stops before the damage
    with pytest.raises(CorruptRecord):
        fs.load_batch(lost[0])
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)  # the rebuilt index remembers the damage
    assert fs.state().damaged == [(lost[0], lost[-1])]
    fs.close()


def test_damaged_frame_found_on_read_when_open_does_not_verify(store_dir, caplog):
    make(store_dir, 200)
    path = next(p for p in seg_files(store_dir) if is_framed(p))
    table = framing.unframe(read(path), Codecs()).table
    in_frame = frame_seqs(path)[2]
    flip(path, table.off[2] + FRAME_HEAD_SIZE + 3)
    fs = FileStore(store_dir, S2, replace(OPTS, verify_segments=False))
    assert fs.state().damaged == []
    with caplog.at_level(logging.ERROR, logger="storage"), pytest.raises(CorruptRecord):
        fs.load(in_frame[1])
    assert "fails verification" in caplog.text
    assert fs.state().damaged == [(in_frame[1], in_frame[1])]
    batch = fs.load_batch(in_frame[0] - 3, max_msgs=50)  # the batch ends at the damage
    assert [m.seq for m in batch] == list(range(in_frame[0] - 3, in_frame[0]))
    check(fs, [in_frame[0] - 1, in_frame[-1] + 1])  # the frames around it are served
    fs.close()


def test_damaged_record_inside_a_valid_frame_is_not_served(store_dir):
    """A frame whose checksums hold but whose records do not (a bug, or bytes damaged before
    they were compressed): the records' own CRCs still refuse them."""
    make(store_dir, 200)
    path = next(p for p in seg_files(store_dir) if is_framed(p))
    buf = read(path)
    u = framing.unframe(buf, Codecs())
    recs = [r for r in record.scan(u.logical, record.SEGMENT_HEADER_SIZE)
            if isinstance(r, record.Record) and r.kind == record.KIND_MSG]
    victim = recs[len(recs) // 2]
    logical = bytearray(u.logical)
    logical[victim.offset + victim.length - 8] ^= 0x01
    k = u.table.find(victim.offset)
    lo, hi = u.table.lo[k], (u.table.lo[k + 1] if k + 1 < len(u.table.lo) else u.table.end)
    raw = bytes(logical[lo:hi])
    frame = framing.encode_frame(framing.CODEC_ZSTD, lo, raw,
                                 Codecs().compress(framing.CODEC_ZSTD, raw))
    a, b = u.table.extent(k)
    with open(path, "wb") as f:
        f.write(buf[:a] + frame + buf[b:])
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.state().damaged == [(victim.seq, victim.seq)]
    with pytest.raises(CorruptRecord):
        fs.load(victim.seq)
    check(fs, [victim.seq - 1, victim.seq + 1])
    fs.close()


def test_truncated_framed_segment_reports_the_lost_range(store_dir):
    make(store_dir, 200)
    path = [p for p in seg_files(store_dir) if is_framed(p)][1]
    table = framing.unframe(read(path), Codecs()).table
    per_frame = frame_seqs(path)
    os.truncate(path, table.off[2] + 40)  # mid-frame
    first_lost, last_lost = per_frame[2][0], per_frame[-1][-1]
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.state().damaged == [(first_lost, last_lost)]
    check(fs, [s for s in range(1, 201) if not first_lost <= s <= last_lost])
    with pytest.raises(CorruptRecord):
        fs.load(last_lost)
    fs.close()


def test_damaged_header_of_a_framed_segment_is_read_through_its_frames(store_dir):
    make(store_dir, 200)
    path = [p for p in seg_files(store_dir) if is_framed(p)][1]
    seqs = [s for frame in frame_seqs(path) for s in frame]
    flip(path, 20)
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.state().damaged == []
    check(fs, range(1, 201))
    assert seqs[0] > 1
    fs.close()


def test_torn_tail_of_the_active_segment_in_a_compressed_store(store_dir, caplog):
    make(store_dir, 100)
    active = seg_files(store_dir)[-1]
    assert not is_framed(active)
    whole = record.encode_msg(101, 5, 0, b"x", b"", event(101))
    with open(active, "ab") as f:
        f.write(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = FileStore(store_dir, S2, OPTS)
    assert "torn tail" in caplog.text
    assert (fs.state().last_seq, fs.state().damaged) == (100, [])
    fill(fs, 100)
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    check(fs, range(1, 201))
    fs.close()


# ---------------------------------------------------------------------------------------------
# Crashes during a compression


class Crash(BaseException):
    """The process dies here."""


@pytest.mark.parametrize("point", ["write", "rename", "index", "finish"])
def test_crash_and_power_loss_at_every_step_of_a_compression(tmp_path, monkeypatch, point):
    journal = str(tmp_path / "journal")
    path = str(tmp_path / "store")
    durable.set_journal(journal)
    try:
        fs = FileStore(path, S2, OPTS)
        fill(fs, 60, every=1000)  # nothing synced: the sealed segments wait for their bytes
        sync(fs)  # bytes durable (and the segments closed); the compressions are planned next
        fill(fs, 5, every=1000)
        job = fs.begin_sync()
        assert job.plan.compressions

        real_fdatasync, real_rename, real_write_checked = (
            durable.fdatasync, durable.rename, durable.write_checked)

        def fdatasync(fd, p, n):
            if point == "write" and p.endswith(".compact.tmp"):
                raise Crash()
            real_fdatasync(fd, p, n)

        def rename(src, dst):
            if point == "rename" and src.endswith(".compact.tmp"):
                raise Crash()
            real_rename(src, dst)

        def write_checked(p, payload):
            if point == "index" and p.endswith(".idx"):
                raise Crash()
            real_write_checked(p, payload)

        monkeypatch.setattr(durable, "fdatasync", fdatasync)
        monkeypatch.setattr(durable, "rename", rename)
        monkeypatch.setattr(durable, "write_checked", write_checked)
        with contextlib.suppress(Crash):
            job.run()
        monkeypatch.undo()
        fs._release()  # the process is gone
        durable.simulate_power_loss(journal, path)
        fs = FileStore(path, S2, OPTS)
        st = fs.state()
        assert st.damaged == []
        # The job fdatasyncs its own 5 messages before it compresses anything.
        assert st.last_seq == 65
        check(fs, range(1, st.last_seq + 1))
        fill(fs, 40)
        fs.close()
        fs = FileStore(path, S2, OPTS)
        check(fs, range(1, fs.last_seq + 1))
        assert sum(is_framed(p) for p in seg_files(path)) >= 2
        fs.close()
    finally:
        durable.set_journal(None)


def test_reads_while_a_compression_runs_use_the_old_file(store_dir):
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 60, every=1000)
    sync(fs)
    job = fs.begin_sync()
    assert job.plan.compressions
    seg_path = job.plan.compressions[0].seg_path
    job.run()  # the framed file is in place; the store learns it at finish_sync
    assert is_framed(seg_path)
    fs._block = None
    check(fs, range(1, 61))
    assert fs.remove(3, erase=True)  # waits for the compression, then owes a compaction
    fs.finish_sync(job)
    check(fs, range(4, 61))
    fs.close()
    assert all(b"m-3\r" not in logical(p) and event(3) not in logical(p)
               for p in seg_files(store_dir))


def test_a_failed_compression_does_not_fail_the_sync(store_dir, monkeypatch, caplog):
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 60, every=1000)
    sync(fs)
    fill(fs, 3, every=1000)
    job = fs.begin_sync()
    assert job.plan.compressions

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(syncjob, "_replace_file", broken)
    job.run()  # no exception: the 3 new messages are durable
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs.finish_sync(job)
    assert "could not compress" in caplog.text
    assert fs.state().msgs == 63
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    check(fs, range(1, 64))
    fs.close()


# ---------------------------------------------------------------------------------------------
# Switching compression, erase, compaction, truncation


def test_plain_store_reopened_compressed_and_back(store_dir):
    make(store_dir, 100, config=PLAIN)
    plain = set(seg_files(store_dir)[:-1])  # sealed; the active one is sealed after reopening
    assert not any(is_framed(p) for p in seg_files(store_dir))
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 100)
    fs.close()
    framed = {p for p in seg_files(store_dir) if is_framed(p)}
    assert len(framed) >= 3 and not framed & plain  # old segments keep their form
    fs = FileStore(store_dir, PLAIN, OPTS)  # compressed segments stay readable
    check(fs, range(1, 201))
    fill(fs, 100)
    fs.close()
    newest = set(seg_files(store_dir)[:-1]) - plain - framed
    assert newest and not any(is_framed(p) for p in newest)
    fs = FileStore(store_dir, S2, OPTS)
    check(fs, range(1, 301))
    fs.close()


def test_update_config_switches_compression_for_segments_sealed_after(store_dir):
    fs = FileStore(store_dir, PLAIN, OPTS)
    fill(fs, 80)
    before = set(seg_files(store_dir)[:-1])  # sealed before the change
    fs.update_config(S2)
    fill(fs, 80)
    sync(fs)
    sync(fs)
    after = set(seg_files(store_dir)) - before
    assert any(is_framed(p) for p in after) and not any(is_framed(p) for p in before)
    with pytest.raises(ValueError):
        fs.update_config(StoreConfig("t", compression="gzip"))
    fs.update_config(PLAIN)
    fill(fs, 80)
    fs.close()
    fs = FileStore(store_dir, PLAIN, OPTS)
    check(fs, range(1, 241))
    fs.close()


def test_erase_in_a_framed_segment_rewrites_it(store_dir):
    fs = FileStore(store_dir, S2, OPTS)
    fs.store_msg("k", b"", b"secret-value-1", 1)
    fill(fs, 100)
    sync(fs)
    sync(fs)
    first = seg_files(store_dir)[0]
    assert is_framed(first) and b"secret-value-1" in logical(first)
    assert fs.remove(1, erase=True)
    assert fs.remove(50, erase=True)
    sync(fs)
    assert fs.load(1) is None and fs.load(50) is None
    fs.close()
    blob = b"".join(logical(p) for p in seg_files(store_dir))
    assert b"secret-value-1" not in blob and event(50) not in blob
    assert is_framed(first)  # compacted and framed again
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.load(1) is None and fs.state().damaged == [] and fs.state().msgs == 99
    fs.close()


def test_framed_segments_are_compacted_and_stay_framed(store_dir):
    fs = FileStore(store_dir, StoreConfig("t", max_msgs_per_subject=1, compression="s2"), OPTS)
    for i in range(400):  # a KV pattern: older values of each key die everywhere
        fs.store_msg(f"kv.{i % 4}", b"", event(i, 300), i + 1)
        if i % 20 == 0:
            sync(fs)
    sync(fs)
    sync(fs)
    expected = {s: fs.load_last((s,)) for s in fs.subjects()}
    fs.close()
    fs = FileStore(store_dir, StoreConfig("t", max_msgs_per_subject=1, compression="s2"), OPTS)
    assert {s: fs.load_last((s,)) for s in fs.subjects()} == expected
    assert fs.state().msgs == 4 and fs.state().damaged == []
    fs.close()


def test_many_deletions_compact_a_framed_segment(store_dir):
    fs = FileStore(store_dir, S2, replace(OPTS, segment_bytes=1 << 20, frame_bytes=4096))
    fill(fs, 3000, every=500, size=400)
    sync(fs)
    first = seg_files(store_dir)[0]
    assert is_framed(first)
    size = os.path.getsize(first)
    for seq in range(2, 1500):
        if seq % 10:
            fs.remove(seq)
    sync(fs)
    sync(fs)
    assert os.path.getsize(first) < size / 2  # ~40% of its records are left
    assert is_framed(first)
    kept = [1, *[s for s in range(2, 1500) if s % 10 == 0], *range(1500, 3001)]
    check(fs, kept, size=400)
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    check(fs, kept, size=400)
    fs.close()


def test_truncate_into_a_framed_segment(store_dir):
    make(store_dir, 200)
    fs = FileStore(store_dir, S2, OPTS)
    framed = [p for p in seg_files(store_dir) if is_framed(p)]
    cut = frame_seqs(framed[2])[1][1]
    fs.truncate(cut)
    assert fs.state().last_seq == cut
    check(fs, range(1, cut + 1))
    assert fs.load(cut + 1) is None
    last = seg_files(store_dir)[-1]
    assert last == framed[2] and not is_framed(last)  # rewritten plain: it is appended to
    fill(fs, 50)
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.state().damaged == []
    check(fs, range(1, cut + 51))
    fs.close()


def test_version_2_indexes_are_still_read(store_dir, caplog):
    make(store_dir, 100, config=PLAIN)
    for name in os.listdir(store_dir):
        if not name.endswith(".idx"):
            continue
        p = os.path.join(store_dir, name)
        payload = durable.read_checked(p)
        (n,) = struct.unpack_from("<I", payload)
        head = json.loads(payload[4:4 + n])
        assert head["v"] == segindex.VERSION == 3 and head["blobs"][-2:] == [0, 0]
        head["v"] = 2
        head["blobs"] = head["blobs"][:-2]
        for key in ("framed", "logical_size"):
            del head[key]
        raw = json.dumps(head, separators=(",", ":")).encode()
        durable.write_checked(p, struct.pack("<I", len(raw)) + raw + payload[4 + n:])
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = FileStore(store_dir, S2, OPTS)
    assert "rebuilding" not in caplog.text and "unusable" not in caplog.text
    check(fs, range(1, 101))
    fs.close()


def test_patches_never_touch_another_version_of_the_file(tmp_path):
    """An erase patch given back by a failed job must not land on the file that replaced the
    one it was made for (its offsets are not that file's)."""
    path = str(tmp_path / "f")
    head = record.encode_segment_header(record.SegmentHeader(1, 5, 1, 1, 0))
    with open(path, "wb") as f:
        f.write(head + bytes(100))
    other = record.encode_segment_header(record.SegmentHeader(1, 6, 1, 1, 0, True))
    syncjob.FileSyncJob._patch(path, 60, b"\xff" * 4, other)
    assert read(path) == head + bytes(100)
    syncjob.FileSyncJob._patch(path, 60, b"\xff" * 4, head)
    assert read(path)[60:64] == b"\xff" * 4
    assert zlib.crc32(read(path)) != zlib.crc32(head + bytes(100))


def test_segment_purged_while_it_is_compressed(store_dir):
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 60, every=1000)
    sync(fs)
    job = fs.begin_sync()
    assert job.plan.compressions
    assert fs.purge() == 60  # every segment being compressed leaves the index
    job.run()
    fs.finish_sync(job)
    fill(fs, 30)
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    st = fs.state()
    assert (st.msgs, st.first_seq, st.last_seq, st.damaged) == (30, 61, 90, [])
    check(fs, range(61, 91))
    fs.close()


def test_a_failed_compaction_does_not_fail_the_sync(store_dir, caplog):
    """A framed segment owing an erase whose frames rotted: its compaction fails, the job that
    tried does not (its messages are durable), and the rot is found by reads."""
    fs = FileStore(store_dir, S2, OPTS)
    fill(fs, 100)
    sync(fs)
    path = seg_files(store_dir)[1]
    assert is_framed(path)
    table = framing.unframe(read(path), Codecs()).table
    lost = frame_seqs(path)[1]
    flip(path, table.off[1] + FRAME_HEAD_SIZE + 2)
    assert fs.remove(lost[0] - 1, erase=True)
    fs.store_msg("x", b"", b"after", 1)
    with caplog.at_level(logging.WARNING, logger="storage"):
        sync(fs)  # tombstone, then the compaction, which fails
    assert "could not compact" in caplog.text
    assert fs.load(101).data == b"after"
    with pytest.raises(CorruptRecord):
        fs.load(lost[0])
    fs.close()
    fs = FileStore(store_dir, S2, OPTS)
    assert fs.state().damaged == [(lost[0], lost[-1])]
    assert fs.load(101).data == b"after" and fs.load(lost[0] - 1) is None
    fs.close()
