"""FileStore recovery from damage, full disks and real crashes."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from storage import (
    CorruptRecord,
    DamagedFile,
    FileStore,
    FileStoreOptions,
    StoreConfig,
    StoreError,
    StoreFull,
    durable,
)
from storage import record as rec

OPTS = FileStoreOptions(segment_bytes=2048, cache_bytes=512, flush_bytes=256)
CFG = StoreConfig("t")


def payload(seq: int, size: int = 40) -> bytes:
    return zlib.crc32(seq.to_bytes(8, "little")).to_bytes(4, "little") * (size // 4)


def fill(store: FileStore, n: int, subject: str = "s.{}") -> None:
    for i in range(n):
        seq = store.state().last_seq + 1
        assert store.store_msg(subject.format(i % 3), b"", payload(seq), 1_000 + seq) == seq


def sync(store: FileStore) -> None:
    job = store.begin_sync()
    if job is not None:
        job.run()
        store.finish_sync(job)


def segments(path) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".seg"))


def record_offsets(seg_path: str) -> list[tuple[int, int, int]]:
    """(offset, length, seq) of every message record in a segment file."""
    with open(seg_path, "rb") as f:
        buf = f.read()
    return [(r.offset, r.length, r.seq) for r in rec.scan(buf, rec.SEGMENT_HEADER_SIZE)
            if isinstance(r, rec.Record) and r.kind == rec.KIND_MSG]


def flip(path: str, offset: int, mask: int = 0x10) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "store")


def make(store_dir, n=60, **opts) -> None:
    fs = FileStore(store_dir, CFG, FileStoreOptions(**{**OPTS.__dict__, **opts}))
    fill(fs, n)
    fs.close()


def reopen(store_dir, **opts) -> FileStore:
    return FileStore(store_dir, CFG, FileStoreOptions(**{**OPTS.__dict__, **opts}))


def assert_serves(fs: FileStore, seqs) -> None:
    for seq in seqs:
        msg = fs.load(seq)
        assert msg is not None and msg.data == payload(seq), seq


def test_segments_roll_and_everything_is_served_after_reopen(store_dir):
    make(store_dir, 200)
    assert len(segments(store_dir)) > 5
    fs = reopen(store_dir)
    assert fs.state().msgs == 200
    assert_serves(fs, range(1, 201))
    assert fs.subjects() == {"s.0": 67, "s.1": 67, "s.2": 66}
    fs.close()


def test_torn_tail_is_cut_and_writing_continues(store_dir, caplog):
    make(store_dir, 10)
    active = segments(store_dir)[-1]
    whole = rec.encode_msg(11, 5, 0, b"s.0", b"", payload(11))
    with open(active, "ab") as f:
        f.write(whole[: len(whole) // 2])  # a record cut by the crash
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = reopen(store_dir)
    assert "torn tail" in caplog.text
    st = fs.state()
    assert (st.msgs, st.last_seq, st.damaged) == (10, 10, [])
    assert fs.store_msg("s.0", b"", payload(11), 5) == 11
    fs.close()
    fs = reopen(store_dir)
    assert_serves(fs, range(1, 12))
    fs.close()


def test_bit_flip_in_sealed_segment_is_detected_and_never_served(store_dir, caplog):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, length, bad = record_offsets(sealed)[2]
    flip(sealed, off + length - 10)  # in the payload
    with caplog.at_level(logging.ERROR, logger="storage"):
        fs = reopen(store_dir)
    assert "fails its checksum" in caplog.text
    assert fs.state().damaged == [(bad, bad)]
    with pytest.raises(CorruptRecord) as info:
        fs.load(bad)
    assert info.value.seq == bad
    assert_serves(fs, [s for s in range(1, 121) if s != bad])
    with pytest.raises(CorruptRecord):
        fs.load_next(bad - 1 if bad > 1 else 1, ("nope",))  # may be in the damaged range
    assert fs.load_next(bad + 1).seq == bad + 1
    assert fs.state().msgs == 119
    fs.close()
    fs = reopen(store_dir)  # the rebuilt index remembers the damage
    assert fs.state().damaged == [(bad, bad)]
    assert fs.remove(bad)  # the owner accepts the loss (e.g. after repair elsewhere)
    assert fs.state().damaged == []
    fs.close()
    assert reopen(store_dir).state().damaged == []


def test_damaged_record_header_is_skipped_by_resync(store_dir):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, _, bad = record_offsets(sealed)[3]
    flip(sealed, off + 4, 0x7F)  # the header's length field: the boundary must be searched for
    fs = reopen(store_dir)
    assert fs.state().damaged == [(bad, bad)]
    assert_serves(fs, [s for s in range(1, 121) if s != bad])
    fs.close()


def test_bit_flip_found_on_read_when_open_does_not_verify(store_dir, caplog):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, length, bad = record_offsets(sealed)[1]
    flip(sealed, off + length - 6)
    fs = reopen(store_dir, verify_segments=False)
    assert fs.state().damaged == []
    with caplog.at_level(logging.ERROR, logger="storage"), pytest.raises(CorruptRecord):
        fs.load(bad)
    assert "fails verification" in caplog.text
    assert fs.state().damaged == [(bad, bad)]
    with pytest.raises(CorruptRecord):
        fs.load(bad)
    assert_serves(fs, [bad - 1, bad + 1])
    fs.close()


def test_truncated_middle_segment_reports_the_lost_range(store_dir):
    make(store_dir, 120)
    middle = segments(store_dir)[2]
    recs = record_offsets(middle)
    cut_off, _, first_lost = recs[len(recs) // 2]
    last_lost = recs[-1][2]
    os.truncate(middle, cut_off + 7)
    fs = reopen(store_dir)
    assert fs.state().damaged == [(first_lost, last_lost)]
    assert_serves(fs, [s for s in range(1, 121) if not first_lost <= s <= last_lost])
    for seq in (first_lost, last_lost):
        with pytest.raises(CorruptRecord):
            fs.load(seq)
    fs.close()


def test_truncated_active_segment_keeps_what_is_left(store_dir):
    make(store_dir, 50)
    active = segments(store_dir)[-1]
    recs = record_offsets(active)
    off, _, first_cut = recs[len(recs) // 2]
    os.truncate(active, off + 3)
    fs = reopen(store_dir)
    st = fs.state()
    assert (st.last_seq, st.damaged) == (first_cut - 1, [])
    assert_serves(fs, range(1, first_cut))
    assert fs.store_msg("s.0", b"", payload(first_cut), 1) == first_cut
    fs.close()


@pytest.mark.parametrize("damage", ["delete", "flip", "truncate"])
def test_index_files_are_rebuilt(store_dir, damage, caplog):
    make(store_dir, 150)
    fs = reopen(store_dir)
    fs.remove(7)
    fs.purge(subject="s.2", seq=40)
    expected = (fs.state(), fs.subjects(), fs.deleted())
    fs.close()
    indexes = sorted(p for p in os.listdir(store_dir) if p.endswith(".idx"))
    assert len(indexes) >= 3
    for name in indexes:
        path = os.path.join(store_dir, name)
        if damage == "delete":
            os.unlink(path)
        elif damage == "flip":
            flip(path, os.path.getsize(path) // 2)
        else:
            os.truncate(path, os.path.getsize(path) - 5)
    with caplog.at_level(logging.WARNING, logger="storage"):
        fs = reopen(store_dir)
    assert "rebuilding" in caplog.text
    assert (fs.state(), fs.subjects(), fs.deleted()) == expected
    fs.close()
    assert all(os.path.exists(os.path.join(store_dir, n)) for n in indexes)


def test_damaged_metadata_is_refused_clearly(store_dir):
    make(store_dir, 5)
    meta = os.path.join(store_dir, "store.meta")
    flip(meta, os.path.getsize(meta) - 3)
    with pytest.raises(DamagedFile, match=r"store\.meta is damaged: checksum mismatch"):
        reopen(store_dir)
    os.unlink(meta)
    with pytest.raises(StoreError, match="missing"):
        reopen(store_dir)


def test_numbering_survives_purges_skips_and_restarts(store_dir):
    fs = FileStore(store_dir, StoreConfig("t", first_seq=100), OPTS)
    assert fs.state().first_seq == 100
    fill(fs, 80)
    assert fs.purge() == 80
    fs.close()
    fs = reopen(store_dir)
    st = fs.state()
    assert (st.msgs, st.first_seq, st.last_seq) == (0, 180, 179)
    assert len(segments(store_dir)) == 1  # the purged segments were unlinked
    fs.skip_msgs(500)
    fs.close()
    fs = reopen(store_dir)
    assert fs.store_msg("x", b"", b"1", 7) == 500
    fs.close()
    assert reopen(store_dir).state().last_seq == 500


def test_purged_front_segments_are_unlinked_after_the_purge_is_durable(store_dir):
    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 200)
    sync(fs)
    before = segments(store_dir)
    fs.purge(seq=150)
    assert segments(store_dir) == before  # nothing unlinked before the purge marker is durable
    sync(fs)
    after = segments(store_dir)
    assert len(after) < len(before)
    fs.close()
    assert reopen(store_dir).state().first_seq == 150


def test_erase_overwrites_the_bytes(store_dir):
    fs = FileStore(store_dir, CFG, OPTS)
    fs.store_msg("k", b"", b"secret-value-1", 1)
    fill(fs, 100)
    sync(fs)
    fs.store_msg("k", b"", b"secret-value-2", 2)
    assert fs.remove(1, erase=True) and fs.remove(102, erase=True)
    fs.close()
    blob = b"".join(Path(p).read_bytes() for p in segments(store_dir))
    assert b"secret-value" not in blob
    fs = reopen(store_dir)
    assert fs.load(1) is None and fs.load(102) is None and fs.state().damaged == []
    fs.close()


def test_jobs_begun_while_one_is_outstanding_chain(store_dir):
    import threading

    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 10)
    first = fs.begin_sync()
    fill(fs, 10)
    second = fs.begin_sync()  # covers only what came after `first`
    done = []
    t2 = threading.Thread(target=lambda: (second.run(), done.append(2)))
    t2.start()  # waits for `first` inside run()
    t1 = threading.Thread(target=lambda: (first.run(), done.append(1)))
    t1.start()
    t1.join()
    t2.join()
    assert done == [1, 2]
    fs.finish_sync(second)  # finishes `first` too
    fs.finish_sync(first)  # already done: no-op
    assert fs.begin_sync() is None
    fs.close()
    assert_serves(reopen(store_dir), range(1, 21))


def test_close_runs_a_job_that_was_begun_but_never_run(store_dir):
    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 10)
    fs.begin_sync()
    fs.close()
    assert_serves(reopen(store_dir), range(1, 11))


def test_big_messages_and_multibyte_subjects_survive_compaction_and_reopen(store_dir):
    fs = FileStore(store_dir, StoreConfig("t", max_msgs_per_subject=1), OPTS)
    big = os.urandom(5000)  # larger than a whole segment
    assert fs.store_msg("größe.ß", b"", big, 1) == 1
    for i in range(300):  # a KV pattern: older values of each key die everywhere
        fs.store_msg(f"kv.ü{i % 4}", b"NATS/1.0\r\n\r\n", payload(i + 2), i + 2, ttl=10**12)
        if i % 20 == 0:
            sync(fs)
    sync(fs)
    sync(fs)
    expected = {s: fs.load_last((s,)) for s in fs.subjects()}
    fs.close()
    assert sum(os.path.getsize(p) for p in segments(store_dir)) < 5000 + 8 * OPTS.segment_bytes
    fs = reopen(store_dir)
    assert fs.load(1).data == big
    assert {s: fs.load_last((s,)) for s in fs.subjects()} == expected
    assert fs.state().msgs == 5 and fs.state().damaged == []
    fs.close()


def test_sealed_segments_release_their_file(store_dir):
    """A segment sealed when all its bytes were already durable (a sync came just before the
    roll) must not keep its fd and write window: no job would ever close them."""
    fs = FileStore(store_dir, CFG, OPTS)
    for _ in range(100):
        fill(fs, 1)
        sync(fs)
    assert len(fs._segs) > 3
    assert [s.id for s in fs._segs[:-1] if s.file is not None] == []
    fs.close()


class _Enospc:
    """Wraps an os function so it fails with ENOSPC while `full` is set."""

    def __init__(self, real) -> None:
        self.full = False
        self.real = real

    def __call__(self, *args):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(*args)


def test_enospc_on_write_fails_cleanly_and_recovers(store_dir, monkeypatch):
    disk = _Enospc(os.pwrite)
    monkeypatch.setattr(durable.os, "pwrite", disk)
    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 30)
    sync(fs)
    fill(fs, 5)
    disk.full = True
    job = fs.begin_sync()
    with pytest.raises(OSError) as info:
        job.run()
    assert info.value.errno == errno.ENOSPC
    fs.finish_sync(job)
    # The 5 messages the failed sync covered were never acknowledged: they are withdrawn, so
    # a publisher told "failed" never sees its message show up later.
    assert [fs.load(s) for s in range(31, 36)] == [None] * 5
    with pytest.raises(StoreFull):
        fs.store_msg("s.0", b"", b"x", 1)
    st = fs.state()
    assert (st.msgs, st.last_seq) == (30, 35)  # the refused store changed nothing
    assert_serves(fs, range(1, 31))
    disk.full = False
    assert fs.store_msg("s.0", b"", payload(36), 1) == 36
    sync(fs)
    fs.close()
    fs = reopen(store_dir)
    assert_serves(fs, [*range(1, 31), 36])
    assert fs.deleted() == [31, 32, 33, 34, 35]
    fs.close()


def test_enospc_on_fdatasync_rewrites_everything_unsynced(store_dir, monkeypatch):
    """After a failed fsync the page cache is not trusted: the retry writes the bytes again."""
    disk = _Enospc(os.fdatasync)
    writes = []
    real_pwrite = os.pwrite
    monkeypatch.setattr(durable.os, "fdatasync", disk)
    monkeypatch.setattr(durable.os, "pwrite",
                        lambda fd, data, off: writes.append(off) or real_pwrite(fd, data, off))
    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 5)
    sync(fs)
    first_unsynced = len(writes)
    fill(fs, 5)
    disk.full = True
    job = fs.begin_sync()
    with pytest.raises(OSError):
        job.run()
    fs.finish_sync(job)
    failed_at = writes[first_unsynced]  # where the bytes the failed sync covered begin
    writes.clear()
    fill(fs, 3)  # the page cache takes writes; nothing is acknowledged until a sync works
    disk.full = False
    sync(fs)
    assert min(writes) == failed_at
    fs.close()
    fs = reopen(store_dir)
    assert_serves(fs, [1, 2, 3, 4, 5, 11, 12, 13])
    assert fs.deleted() == [6, 7, 8, 9, 10]
    fs.close()


def _can_mount_tmpfs(path) -> bool:
    if os.geteuid() != 0:
        return False
    os.makedirs(path, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    return ok


def test_real_full_disk(tmp_path):
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and tmpfs mounts for a real full disk")
    try:
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * (256 << 10))
        fs = FileStore(str(mnt / "store"), CFG, FileStoreOptions(segment_bytes=64 << 10))
        acked: set[int] = set()
        refused = 0
        for _ in range(2000):
            try:
                fill(fs, 20)
            except StoreFull:
                refused += 1
                break
            covered = fs.state().last_seq
            job = fs.begin_sync()
            try:
                job.run()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                fs.finish_sync(job)
                continue
            fs.finish_sync(job)
            acked.update(s for s in range(1, covered + 1) if fs.load(s) is not None)
        assert refused and len(acked) > 100
        assert_serves(fs, sorted(acked))
        ballast.unlink()  # space comes back
        fill(fs, 20)
        sync(fs)
        last = fs.state().last_seq
        fs.close()
        fs = FileStore(str(mnt / "store"), CFG, FileStoreOptions(segment_bytes=64 << 10))
        assert fs.state().last_seq == last
        assert_serves(fs, sorted(acked) + list(range(last - 19, last + 1)))
        fs.close()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


CHILD = r"""
import sys
from storage import FileStore, FileStoreOptions, StoreConfig
from tests.unit.test_filestore import payload
fs = FileStore(sys.argv[1], StoreConfig("crash"), FileStoreOptions(segment_bytes=32768))
seq = fs.state().last_seq

def store():
    return fs.store_msg("crash.%d" % ((seq + 1) % 5), b"", payload(seq + 1, 100), seq + 1)

while True:
    for _ in range(37):
        seq = store()
    covered = seq
    job = fs.begin_sync()
    for _ in range(5):  # stored while the sync runs: not covered by it
        seq = store()
    job.run()
    fs.finish_sync(job)
    print(covered, flush=True)
"""


@pytest.mark.parametrize("tail", ["cut", "tear", "pages"])
def test_sigkill_then_power_loss_keeps_every_synced_message(tmp_path, tail):
    journal = str(tmp_path / "journal")
    store = str(tmp_path / "store")
    env = {**os.environ, durable.JOURNAL_ENV: journal}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    synced = 0
    accepted: set[int] = set()  # unsynced sequences lost to damage, removed between rounds
    for _round in range(2):  # crash, recover, crash again on the recovered store
        child = subprocess.Popen([sys.executable, "-c", CHILD, store], env=env, cwd=root,
                                 stdout=subprocess.PIPE, text=True)
        target = synced + 3000
        for line in child.stdout:
            synced = max(synced, int(line))
            if synced >= target:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert synced >= target, "the child died early"
        durable.simulate_power_loss(journal, store, tail=tail, seed=synced)
        fs = FileStore(store, StoreConfig("crash"))
        st = fs.state()
        assert st.damaged == [] or min(lo for lo, _ in st.damaged) > synced
        assert st.last_seq >= synced
        for seq in range(1, synced + 1):
            if seq in accepted:
                continue
            msg = fs.load(seq)
            assert msg is not None, seq
            assert (msg.subject, msg.data) == (f"crash.{seq % 5}", payload(seq, 100)), seq
        for lo, hi in st.damaged:  # unsynced damage: accept it before the next round
            for seq in range(lo, hi + 1):
                fs.remove(seq)
                accepted.add(seq)
        fs.close()


def test_destroy_removes_everything(tmp_path):
    path = tmp_path / "store"
    fs = FileStore(str(path), CFG, OPTS)
    fill(fs, 50)
    fs.destroy()
    assert not path.exists()
    with pytest.raises(StoreError):
        fs.store_msg("x", b"", b"", 1)


# ---------------------------------------------------------------------------------------------
# Batched reads (load_batch), the read-ahead block, and damage met while reading


def by_load_next(fs, start, filters=(">",), max_msgs=256, max_bytes=0):
    out, used = [], 0
    while len(out) < max_msgs:
        msg = fs.load_next(out[-1].seq + 1 if out else start, filters)
        if msg is None or (max_bytes > 0 and out and used + msg.size > max_bytes):
            break
        used += msg.size
        out.append(msg)
    return out


def test_load_batch_reads_neighbouring_records_with_one_read(store_dir, monkeypatch):
    make(store_dir, 200)
    fs = reopen(store_dir)  # nothing in memory: every record is read from its file
    reads = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: reads.append(n) or real(fd, n, off))
    batch = fs.load_batch(1, max_msgs=10)
    assert [m.seq for m in batch] == list(range(1, 11))
    assert len(reads) == 1  # one segment, one read
    reads.clear()
    everything = fs.load_batch(1, max_msgs=1000)
    assert [m.data for m in everything] == [payload(s) for s in range(1, 201)]
    assert len(reads) == len(segments(store_dir))  # one per segment
    reads.clear()
    sparse = fs.load_batch(1, ("s.1",), max_msgs=1000)
    assert sparse == by_load_next(fs, 1, ("s.1",), 1000)
    assert [m.seq for m in sparse] == list(range(2, 201, 3))
    assert fs.load_batch(0, max_msgs=0) == [] and fs.load_batch(201) == []
    fs.close()


def test_load_batch_byte_budget_counts_message_sizes(store_dir):
    fs = FileStore(store_dir, CFG, OPTS)
    fs.store_msg("kv.ü", b"NATS/1.0\r\n\r\n", b"x" * 30, 1)  # size 4 + 12 + 30 = 46
    fs.store_msg("kv.a", b"", b"y" * 10, 2)  # 14
    fs.store_msg("kv.b", b"", b"z" * 100, 3)  # 104
    sizes = [m.size for m in fs.load_batch(1)]
    assert sizes == [46, 14, 104]
    assert [m.seq for m in fs.load_batch(1, max_bytes=60)] == [1, 2]  # 46 + 14 = 60 fits
    assert [m.seq for m in fs.load_batch(1, max_bytes=59)] == [1]
    assert [m.seq for m in fs.load_batch(1, max_bytes=1)] == [1]  # the first always comes
    assert [m.seq for m in fs.load_batch(3, max_bytes=1)] == [3]
    assert fs.load_batch(1, ("kv.b", "kv.ü"), max_bytes=100) == [fs.load(1)]
    fs.close()


def test_load_batch_stops_before_a_record_found_damaged_while_reading(store_dir, caplog):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, length, bad = record_offsets(sealed)[2]
    flip(sealed, off + length - 6)
    fs = reopen(store_dir, verify_segments=False)  # nobody knows yet
    first = fs.first_seq
    before = by_load_next(fs, first, max_msgs=bad - first)
    with caplog.at_level(logging.ERROR, logger="storage"):
        batch = fs.load_batch(first, max_msgs=1000)
    assert batch == before and batch[-1].seq == bad - 1  # what precedes the damage
    assert "fails verification" in caplog.text
    assert fs.state().damaged == [(bad, bad)] and fs.state().msgs == 119
    with pytest.raises(CorruptRecord) as info:  # the next call starts at the damage
        fs.load_batch(bad)
    assert info.value.seq == bad
    with pytest.raises(CorruptRecord):  # its subject is unknown now: any filter may want it
        fs.load_batch(bad - 1, ("nope",))
    assert [m.seq for m in fs.load_batch(bad - 1, max_msgs=1)] == [bad - 1]
    rest = fs.load_batch(bad + 1, max_msgs=1000)
    assert [m.seq for m in rest] == list(range(bad + 1, 121))
    assert fs.remove(bad)  # the loss is accepted: reading goes on past it
    assert [m.seq for m in fs.load_batch(bad - 1, max_msgs=3)] == [bad - 1, bad + 1, bad + 2]
    fs.close()


def test_load_batch_whose_first_record_is_damaged_raises(store_dir):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, _, bad = record_offsets(sealed)[0]
    flip(sealed, off + 3)  # the header
    fs = reopen(store_dir, verify_segments=False)
    subject = f"s.{(bad - 1) % 3}"
    with pytest.raises(CorruptRecord) as info:
        fs.load_batch(bad, (subject,))
    assert info.value.seq == bad and fs.state().damaged == [(bad, bad)]
    fs.close()


def test_load_batch_with_damage_known_at_open(store_dir):
    make(store_dir, 120)
    sealed = segments(store_dir)[1]
    off, length, bad = record_offsets(sealed)[2]
    flip(sealed, off + length - 10)
    fs = reopen(store_dir)
    assert fs.state().damaged == [(bad, bad)]
    assert [m.seq for m in fs.load_batch(1, max_msgs=1000)] == list(range(1, bad))
    with pytest.raises(CorruptRecord):
        fs.load_batch(bad)
    with pytest.raises(CorruptRecord):  # nothing matches before the damage
        fs.load_batch(1, ("nope",))
    assert fs.load_batch(bad + 1, ("nope",)) == []
    fs.close()


def test_reads_after_compaction_and_erase_do_not_use_stale_bytes(store_dir):
    fs = FileStore(store_dir, CFG, OPTS)
    fill(fs, 200)
    sync(fs)
    assert fs.load_next(1).seq == 1 and fs.load_next(2).seq == 2  # keeps a block of segment 1
    for seq in range(1, 201):
        if seq % 5:
            fs.remove(seq)
    for _ in range(3):
        sync(fs)  # tombstones, then compactions
    assert fs.load(5).data == payload(5) and fs.load_next(6).seq == 10
    assert [m.seq for m in fs.load_batch(1, max_msgs=100)] == list(range(5, 201, 5))
    assert fs.load_batch(1, max_msgs=100) == by_load_next(fs, 1, max_msgs=100)
    fs.load_batch(1, max_msgs=3)
    assert fs._block is not None
    fs.remove(10, erase=True)  # the kept block may hold its bytes: dropped
    assert fs._block is None
    fs.close()
    fs = reopen(store_dir)
    assert [m.seq for m in fs.load_batch(1, max_msgs=100)] == [5, *range(15, 201, 5)]
    fs.close()


def test_erase_never_reaches_the_disk_before_the_removal(tmp_path, monkeypatch):
    """An erased record is as valid as the message was and of the same length (the segment's
    CRC in its index does not change): were it on disk without its tombstone, a restart would
    take it for a live message whose record is damaged. A sync that fails must not leave that
    behind a power cut."""
    journal = str(tmp_path / "journal")
    store_dir = str(tmp_path / "store")
    durable.set_journal(journal)
    try:
        fs = FileStore(store_dir, CFG, OPTS)
        fill(fs, 60)
        fs.close()
        fs = reopen(store_dir)
        assert fs._locate(5)[0].sealed  # its record is patched in a sealed segment's file
        assert fs.remove(5, erase=True)
        disk = _Enospc(os.fdatasync)
        monkeypatch.setattr(durable.os, "fdatasync", disk)
        disk.full = True
        job = fs.begin_sync()
        with pytest.raises(OSError):
            job.run()
        fs.finish_sync(job)
        disk.full = False
        fs._release()  # the process dies, then the power goes
        durable.simulate_power_loss(journal, store_dir, tail="cut")
    finally:
        durable.set_journal(None)
    fs = reopen(store_dir)
    assert fs.state().damaged == []
    assert fs.load(5) is None or fs.load(5).data == payload(5)  # the removal: lost or kept
    assert len(fs.load_batch(1, max_msgs=100)) == fs.state().msgs
    fs.close()
