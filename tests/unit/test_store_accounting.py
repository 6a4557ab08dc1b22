"""Byte accounting (nats-server's numbers), the cheap accessors, `removals` and `skip_msg`, on both
stores. Their interplay with everything else is covered by the model test (test_store_model.py);
these pin the exact numbers and the restart behaviour."""

from __future__ import annotations

import json
import logging
import os
import struct

import pytest

from storage import (
    CorruptRecord,
    FileStore,
    FileStoreOptions,
    StoreConfig,
    durable,
    record,
)
from storage.store import MessageStore

OPTS = FileStoreOptions(segment_bytes=1024, cache_bytes=256, flush_bytes=256)
HDR = b"NATS/1.0\r\nk: v\r\n\r\n"  # 18 bytes
assert len(HDR) == 18


def sync(store: MessageStore) -> None:
    job = store.begin_sync()
    if job is not None:
        job.run()
        store.finish_sync(job)


@pytest.fixture
def store_options() -> FileStoreOptions:
    return OPTS


def accessors(store: MessageStore) -> tuple[int, int, int]:
    st = store.state()
    assert (store.first_seq, store.last_seq, store.msgs) == (st.first_seq, st.last_seq, st.msgs)
    return st.first_seq, st.last_seq, st.msgs


# ---------------------------------------------------------------------------------------------
# Bytes

# (subject, hdr, data) -> bytes counted: nats-server's fileStoreMsgSize (22-byte record header +
# 8-byte hash, + 4-byte header length when there are headers) and memStoreMsgSize (16). Checked
# against nats-server 2.9.10's stream info: file +43 for "file.foo"/"hello", +65 with an 18-byte
# header, +42 for "file.größe" (12 bytes) and empty; memory +31, +49, +30 for the same.
CASES = [
    ("foo", b"", b"hello", 38, 24),  # 30 + 3 + 5 | 16 + 3 + 5
    ("foo", HDR, b"hello", 60, 42),  # 30 + 3 + 4 + 18 + 5 | 16 + 3 + 18 + 5
    ("größe", b"", b"", 37, 23),  # the subject counts as 7 UTF-8 bytes
    ("a", HDR, b"", 53, 35),  # 30 + 1 + 4 + 18 | 16 + 1 + 18
]


def test_bytes_are_counted_like_nats_server(kind, open_store):
    store = open_store()
    total = 0
    for subject, hdr, data, file_bytes, mem_bytes in CASES:
        size = file_bytes if kind == "file" else mem_bytes
        assert store.msg_size(subject, hdr, data) == size
        store.store_msg(subject, hdr, data, 1)
        total += size
        assert store.state().bytes == total
    assert store.remove(2)
    assert store.state().bytes == total - (60 if kind == "file" else 42)
    assert store.purge(subject="größe") == 1
    assert store.state().bytes == (38 + 53 if kind == "file" else 24 + 35)


def test_file_store_bytes_survive_reopen_from_scan_index_and_rebuilt_index(tmp_path):
    directory = str(tmp_path / "store")
    fs = FileStore(directory, StoreConfig("t"), OPTS)
    for i in range(60):  # several sealed segments (with indexes) and an active one
        subject, hdr, data, _, _ = CASES[i % len(CASES)]
        fs.store_msg(subject, hdr, data + bytes(i % 7), i)
    fs.remove(5)
    fs.remove(22)
    expected = fs.state()
    assert expected.bytes == sum(CASES[i % len(CASES)][3] + i % 7 for i in range(60)
                                 if i not in (4, 21))
    fs.close()
    fs = FileStore(directory, StoreConfig("t"), OPTS)
    assert fs.state() == expected
    fs.close()
    for name in os.listdir(directory):
        if name.endswith(".idx"):
            os.unlink(os.path.join(directory, name))
    fs = FileStore(directory, StoreConfig("t"), OPTS)
    assert fs.state() == expected
    fs.close()


def test_file_store_ignores_indexes_of_the_previous_version(tmp_path, caplog):
    """Version 1 indexes held sizes without the overhead: they are rebuilt, not trusted."""
    directory = str(tmp_path / "store")
    fs = FileStore(directory, StoreConfig("t"), OPTS)
    for i in range(40):
        fs.store_msg("foo", HDR, bytes(20), i)
    expected = fs.state()
    fs.close()
    names = [n for n in os.listdir(directory) if n.endswith(".idx")]
    assert names
    for name in names:
        path = os.path.join(directory, name)
        payload = durable.read_checked(path)
        (head_len,) = struct.unpack_from("<I", payload)
        head = json.loads(payload[4:4 + head_len])
        head["v"] = 1
        raw = json.dumps(head).encode()
        durable.write_checked(path, struct.pack("<I", len(raw)) + raw + payload[4 + head_len:])
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = FileStore(directory, StoreConfig("t"), OPTS)
    assert "rebuilding" in caplog.text
    assert fs.state() == expected and expected.bytes == 40 * (30 + 3 + 4 + 18 + 20)
    fs.close()


@pytest.mark.parametrize("reopen_from", ["index", "scan"])
def test_compaction_keeps_records_with_headers_intact(tmp_path, reopen_from):
    """Compaction copies records by lengths computed from their counted size and whether they
    have headers (known from the record, the index, an earlier compaction): a wrong length
    would leave junk between records. Segments are compacted once after a reopen (from their
    index, or rescanned), then a second time."""
    directory = str(tmp_path / "store")
    config = StoreConfig("t")
    opts = FileStoreOptions(segment_bytes=4096, cache_bytes=256, flush_bytes=256)

    def settle(fs: FileStore) -> None:
        for _ in range(30):  # one compaction per sync
            sync(fs)

    def seg_bytes() -> int:
        return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
                   if n.endswith(".seg"))

    def contents(fs: FileStore):
        return fs.state(), [fs.load(seq) for seq in range(1, 401)]

    def assert_records_intact() -> None:
        for name in os.listdir(directory):
            if name.endswith(".seg"):
                with open(os.path.join(directory, name), "rb") as f:
                    buf = f.read()
                damage = [d for d in record.scan(buf, record.SEGMENT_HEADER_SIZE)
                          if isinstance(d, record.Damage)]
                assert damage == [], name

    fs = FileStore(directory, config, opts)
    for i in range(400):
        fs.store_msg(f"u.{i}", HDR if i % 3 else b"", bytes(i % 50), i,
                     ttl=10**15 if i % 4 == 0 else 0)
    fs.close()
    size_a = seg_bytes()
    if reopen_from == "scan":
        for name in os.listdir(directory):
            if name.endswith(".idx"):
                os.unlink(os.path.join(directory, name))
    fs = FileStore(directory, config, opts)
    for seq in range(1, 401):
        if seq % 10 < 6:
            fs.remove(seq)
    settle(fs)
    size_b = seg_bytes()
    assert size_b < 0.6 * size_a, "nothing was compacted"
    assert_records_intact()
    for seq in range(1, 401):
        if seq % 10 in (6, 7, 8):
            fs.remove(seq)
    settle(fs)
    size_c = seg_bytes()
    assert size_c < 0.6 * size_b, "nothing was compacted a second time"
    assert_records_intact()
    expected = contents(fs)
    assert expected[0].msgs == 40
    fs.close()
    fs = FileStore(directory, config, opts)
    assert contents(fs) == expected
    fs.close()
    for name in os.listdir(directory):
        if name.endswith(".idx"):
            os.unlink(os.path.join(directory, name))
    fs = FileStore(directory, config, opts)  # rescanned: the same messages and bytes
    assert contents(fs) == expected
    fs.close()


@pytest.mark.parametrize("slack", [0, -1])
def test_max_bytes_is_enforced_on_the_counted_bytes(kind, open_store, slack):
    size = 40 if kind == "file" else 26  # "a" + 9 bytes: 30 + 1 + 9 | 16 + 1 + 9
    store = open_store(StoreConfig("t", max_bytes=3 * size + slack))
    for i in range(3):
        store.store_msg("a", b"", bytes(9), i)
    kept = 3 if slack == 0 else 2  # at the limit is fine; one byte over drops the oldest
    assert (store.state().msgs, store.state().bytes, store.removals) == (kept, kept * size,
                                                                         3 - kept)
    store.store_msg("a", b"", bytes(9), 3)
    assert (store.state().msgs, store.state().bytes) == (kept, kept * size)
    assert store.first_seq == 4 - kept + 1 and store.removals == 4 - kept


# ---------------------------------------------------------------------------------------------
# Accessors and removals


def test_accessors_follow_the_state(open_store):
    store = open_store(StoreConfig("t", first_seq=10))
    assert accessors(store) == (10, 9, 0)
    for i in range(5):
        store.store_msg("a.b", b"", b"x", i)
    assert accessors(store) == (10, 14, 5)
    store.remove(10)
    store.remove(12)
    assert accessors(store) == (11, 14, 3)
    store.skip_msg(9)
    assert accessors(store) == (11, 15, 3)
    store.purge()
    assert accessors(store) == (16, 15, 0)
    store.skip_msgs(40)
    assert accessors(store) == (40, 39, 0)


def test_removals_count_every_message_that_leaves(open_store):
    store = open_store(StoreConfig("t", max_msgs_per_subject=2))
    assert store.removals == 0
    for i in range(6):
        store.store_msg(f"s.{i % 2}", b"", b"x", 100 + i)
    assert store.removals == 2  # per-subject limit, inside store_msg
    assert not store.remove(1) and store.removals == 2  # already gone: not counted again
    assert store.remove(3) and store.removals == 3
    assert store.skip_msg(200) == 7 and store.removals == 3  # nothing left
    store.store_msg("t", b"", b"x", 201, ttl=5)
    assert store.expire(206) == 1 and store.removals == 4
    store.update_config(StoreConfig("t", max_msgs=2))
    assert store.removals == 5  # limits from a new config
    assert store.purge(subject="s.1") == 1 and store.removals == 6
    store.store_msg("u", b"", b"x", 300)
    store.store_msg("u", b"", b"x", 301)
    assert store.removals == 7  # max_msgs inside store_msg
    store.skip_msgs(100)
    assert store.removals == 9 and store.msgs == 0
    store.purge()
    assert store.removals == 9


def test_file_store_counts_a_record_found_damaged_on_read(tmp_path):
    directory = str(tmp_path / "store")
    fs = FileStore(directory, StoreConfig("t"), OPTS)
    for i in range(40):
        fs.store_msg("a", b"", bytes([i]) * 30, i)
    fs.close()
    sealed = sorted(n for n in os.listdir(directory) if n.endswith(".seg"))[0]
    path = os.path.join(directory, sealed)
    with open(path, "r+b") as f:
        buf = f.read()
        recs = [r for r in record.scan(buf, record.SEGMENT_HEADER_SIZE)
                if isinstance(r, record.Record)]
        bad = recs[0]  # the first message: the front is damaged, not gone
        f.seek(bad.offset + bad.length - 8)
        f.write(b"\xff")
    fs = FileStore(directory, StoreConfig("t"), FileStoreOptions(**{**OPTS.__dict__,
                                                                     "verify_segments": False}))
    assert fs.removals == 0 and fs.msgs == 40
    with pytest.raises(CorruptRecord):
        fs.load(bad.seq)
    assert (fs.removals, fs.msgs) == (1, 39)  # it left the live messages
    assert accessors(fs) == (1, 40, 39)  # first_seq: the damaged one, as in the state
    assert fs.remove(bad.seq)  # the owner accepts the loss: counted once already
    assert (fs.removals, fs.msgs) == (1, 39)
    assert accessors(fs) == (2, 40, 39)
    fs.close()


# ---------------------------------------------------------------------------------------------
# skip_msg


def test_skip_msg_looks_like_a_removed_message(open_store):
    store = open_store()
    assert store.skip_msg(5) == 1  # empty: the front moves past it
    st = store.state()
    assert (st.first_seq, st.last_seq, st.last_ts, st.msgs, st.num_deleted) == (2, 1, 5, 0, 0)
    assert store.deleted() == []
    store.store_msg("a", b"", b"x", 6)
    assert store.skip_msg(7) == 3
    st = store.state()
    assert (st.first_seq, st.last_seq, st.last_ts, st.msgs, st.num_deleted) == (2, 3, 7, 1, 1)
    assert store.deleted() == [3]
    assert store.load(3) is None and store.load_next(3) is None
    assert store.store_msg("a", b"", b"y", 8) == 4
    assert store.deleted() == [3]
    assert store.num_pending(1) == 2 and store.state().bytes == 2 * store.msg_size("a", b"", b"x")
    assert store.remove(2)
    assert (store.first_seq, store.deleted()) == (4, [])


def test_skip_msg_is_durable_with_the_next_sync(tmp_path):
    directory = str(tmp_path / "store")

    def reopen() -> FileStore:
        return FileStore(directory, StoreConfig("t"), OPTS)

    fs = reopen()
    fs.store_msg("a", b"", b"x", 1)
    sync(fs)
    size = os.path.getsize(os.path.join(directory, "00000001.seg"))
    for ts in range(2, 102):
        fs.skip_msg(ts)
    fs._release()  # killed before a sync: the skips are not durable
    fs = reopen()
    assert (fs.last_seq, fs.state().last_ts) == (1, 1)
    for ts in range(2, 102):
        fs.skip_msg(ts)
    sync(fs)
    # 100 skips cost one marker record, no payload
    assert os.path.getsize(os.path.join(directory, "00000001.seg")) == size + 40
    fs._release()
    fs = reopen()
    st = fs.state()
    assert (st.first_seq, st.last_seq, st.last_ts, st.msgs) == (1, 101, 101, 1)
    assert fs.deleted() == list(range(2, 102))
    assert fs.remove(1)  # now empty: the skipped sequences are not a front to keep
    sync(fs)
    fs._release()
    fs = reopen()
    assert (fs.first_seq, fs.last_seq, fs.msgs, fs.deleted()) == (102, 101, 0, [])
    assert fs.skip_msg(200) == 102
    fs.close()
    fs = reopen()
    assert (fs.first_seq, fs.last_seq, fs.state().last_ts) == (103, 102, 200)
    assert fs.store_msg("a", b"", b"x", 201) == 103
    fs.close()
