"""`MessageStore.truncate`: dropping a tail of sequences (a Raft-replicated stream, after a restart,
goes back to its last snapshot and applies the log again).

The first part runs on both stores and pins the semantics; FileStores are also closed and
reopened, which must give the same answers. The second part is about the FileStore's files: which
segments go, tombstones and damage that must survive, and crashes and power loss at every step of
a truncation. The model test (test_store_model.py) mixes truncate with everything else.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import pytest

from storage import (
    CorruptRecord,
    DamagedFile,
    FileStore,
    FileStoreOptions,
    MemoryStore,
    StoreConfig,
    StoredMessage,
    StoreError,
    durable,
    record,
    truncation,
)
from storage.store import MessageStore

# Ten messages per segment: bases 1, 11, 21, ... while nothing rolls on bytes.
OPTS = FileStoreOptions(segment_bytes=64 << 10, segment_msgs=10, cache_bytes=256,
                        flush_bytes=256)
SUBJECTS = ("a", "b.x", "b.y")


def ts_of(seq: int) -> int:
    return 1_000 + 10 * seq


def fill(store: MessageStore, n: int, ttl: int = 0) -> None:
    for _ in range(n):
        seq = store.last_seq + 1
        subject = SUBJECTS[seq % 3]
        assert store.store_msg(subject, b"", f"m{seq}".encode(), ts_of(seq), ttl) == seq


def sync(store: MessageStore) -> None:
    job = store.begin_sync()
    if job is not None:
        job.run()
        store.finish_sync(job)


@dataclass
class View:
    """Everything a reader can ask a store, for comparing two stores or one store over time."""

    state: tuple
    msgs: list[StoredMessage]
    subjects: dict[str, int]
    deleted: list[int]
    lasts: dict[str, int]
    pending: tuple

    @classmethod
    def of(cls, store: MessageStore) -> View:
        st = store.state()
        msgs = [m for s in range(st.first_seq, st.last_seq + 1) if (m := store.load(s))]
        assert store.load_batch(0, max_msgs=10_000) == msgs
        nxt, seq = [], 0
        while (m := store.load_next(seq)) is not None:
            nxt.append(m)
            seq = m.seq + 1
        assert nxt == msgs
        assert store.load_last() == (msgs[-1] if msgs else None)
        return cls((st.msgs, st.bytes, st.first_seq, st.first_ts, st.last_seq, st.last_ts,
                    st.num_deleted, st.num_subjects, st.damaged),
                   msgs, store.subjects(), store.deleted(),
                   {s: store.last_seq_for(s) for s in SUBJECTS},
                   (store.num_pending(0), store.num_pending(0, ("b.*",)),
                    store.num_pending(st.last_seq - 5, ("b.*",), last_per_subject=True)))


@pytest.fixture
def store_options() -> FileStoreOptions:
    return OPTS


def same_after_reopen(store: MessageStore, make) -> MessageStore:
    """A FileStore closed and opened again must answer exactly as before; returns the store to
    use from now on."""
    if not isinstance(store, FileStore):
        return store
    before = View.of(store)
    store.close()
    store = make(store.config)
    assert View.of(store) == before
    return store


def model_after(store: MessageStore, last_seq: int) -> tuple[list[StoredMessage], int]:
    """The messages a truncate to `last_seq` keeps, and the last timestamp it leaves."""
    kept = [m for m in View.of(store).msgs if m.seq <= last_seq]
    return kept, kept[-1].ts if kept else 0


# ---------------------------------------------------------------------------------------------
# Semantics, on both stores


def test_truncate_drops_the_tail_across_segments_and_numbering_continues(open_store):
    store = open_store()
    fill(store, 45)
    kept, last_ts = model_after(store, 23)
    removals = store.removals
    store.truncate(23)
    view = View.of(store)
    assert view.msgs == kept
    assert view.state[4:6] == (23, last_ts) == (23, ts_of(23))
    assert (store.first_seq, store.last_seq, store.msgs) == (1, 23, 23)
    assert view.subjects == {"a": 7, "b.x": 8, "b.y": 8}
    assert view.lasts == {"a": 21, "b.x": 22, "b.y": 23}
    assert view.deleted == [] and view.state[6] == 0
    assert store.load(24) is None and store.load_next(24) is None
    assert store.removals == removals + 22
    store = same_after_reopen(store, open_store)
    assert store.store_msg("a", b"", b"new", 5_000) == 24
    assert store.load(24) == StoredMessage(24, "a", b"", b"new", 5_000)
    assert store.last_seq_for("a") == 24 and store.subjects()["a"] == 8
    same_after_reopen(store, open_store)


@pytest.mark.parametrize("erase", [False, True])
def test_truncate_to_a_deleted_sequence_keeps_it_as_last_seq(open_store, erase):
    store = open_store()
    fill(store, 30)
    assert store.remove(20, erase=erase) and store.remove(18)
    sync(store)
    store.truncate(20)
    st = store.state()
    # The newest message still held gives the last timestamp: 20's own is gone with it.
    assert (st.last_seq, st.last_ts, st.msgs, st.num_deleted) == (20, ts_of(19), 18, 2)
    assert store.deleted() == [18, 20]
    assert store.load(20) is None and store.load_last().seq == 19
    store = same_after_reopen(store, open_store)
    assert store.store_msg("b.x", b"", b"new", 7) == 21
    assert store.deleted() == [18, 20]
    same_after_reopen(store, open_store)


def test_truncate_when_everything_above_is_already_deleted(open_store):
    store = open_store()
    fill(store, 30)
    for seq in range(21, 31):
        assert store.remove(seq)
    removals = store.removals
    before = View.of(store)
    store.truncate(20)
    after = View.of(store)
    assert after.msgs == before.msgs and store.removals == removals
    assert after.state[4:6] == (20, ts_of(20))
    assert after.deleted == []
    store = same_after_reopen(store, open_store)
    assert store.store_msg("a", b"", b"x", 1) == 21


def test_truncate_into_skipped_sequences(open_store):
    store = open_store()
    fill(store, 12)
    for _ in range(6):
        store.skip_msg(9_999)  # 13..18
    fill(store, 4)  # 19..22
    sync(store)
    store.truncate(15)
    st = store.state()
    assert (st.last_seq, st.last_ts, st.msgs) == (15, ts_of(12), 12)
    assert store.deleted() == [13, 14, 15]
    store = same_after_reopen(store, open_store)
    assert store.store_msg("a", b"", b"x", 1) == 16
    assert store.deleted() == [13, 14, 15]


def test_truncate_to_last_seq_changes_nothing(open_store):
    store = open_store()
    fill(store, 25)
    store.remove(25)  # the last message is gone: last_ts still its timestamp
    store.skip_msg(77_777)
    before, removals = View.of(store), store.removals
    store.truncate(26)
    assert View.of(store) == before and store.removals == removals
    assert store.state().last_ts == 77_777


def test_truncate_to_first_minus_one_empties_but_keeps_numbering(open_store):
    store = open_store()
    fill(store, 35)
    store.purge(seq=12)
    sync(store)
    assert store.first_seq == 12
    store.truncate(11)
    st = store.state()
    assert (st.msgs, st.bytes, st.first_seq, st.last_seq, st.first_ts, st.last_ts) == (
        0, 0, 12, 11, 0, 0)
    assert (st.num_subjects, store.subjects(), store.deleted()) == (0, {}, [])
    assert store.load_next(0) is None and store.load_last() is None
    store = same_after_reopen(store, open_store)
    assert store.store_msg("a", b"", b"x", 1) == 12
    same_after_reopen(store, open_store)


def test_truncate_outside_the_store_is_an_error(open_store):
    store = open_store()
    fill(store, 20)
    store.purge(seq=8)
    before = View.of(store)
    with pytest.raises(StoreError, match="below the first sequence"):
        store.truncate(6)
    with pytest.raises(StoreError, match="beyond the last sequence"):
        store.truncate(21)
    assert View.of(store) == before
    store.truncate(7)  # first_seq - 1: the lowest allowed
    assert (store.first_seq, store.last_seq, store.msgs) == (8, 7, 0)


def test_truncate_forgets_the_ttls_of_removed_messages(open_store):
    store = open_store()
    fill(store, 10, ttl=10_000)
    fill(store, 10, ttl=5)  # 11..20 expire early
    store.truncate(15)
    fill(store, 5)  # 16..20 again, without a ttl
    store = same_after_reopen(store, open_store)
    assert store.expire(ts_of(20) + 50) == 5  # 11..15 only: not the new 16..20
    assert [m.seq for m in View.of(store).msgs] == [*range(1, 11), *range(16, 21)]
    assert store.expire(ts_of(10) + 10_000) == 10
    assert [m.seq for m in View.of(store).msgs] == list(range(16, 21))


def test_limits_after_truncate(open_store):
    store = open_store(StoreConfig("t", max_msgs_per_subject=4))
    fill(store, 40)  # 4 per subject kept: 29..40
    store.truncate(33)  # 29..33: b.y, a, b.x, b.y, a
    assert store.subjects() == {"a": 2, "b.x": 1, "b.y": 2}
    assert store.num_pending(0, ("b.*",)) == 3
    for _ in range(4):  # 34..37: the limit drops b.y's 29 and 32
        assert store.store_msg("b.y", b"", b"y", 9) > 33
    assert store.subjects() == {"a": 2, "b.x": 1, "b.y": 4}
    assert [m.seq for m in View.of(store).msgs] == [30, 31, 33, 34, 35, 36, 37]
    assert store.last_seq_for("b.y") == 37
    store = same_after_reopen(store, open_store)
    store.update_config(StoreConfig("t", max_msgs=3))
    assert [m.seq for m in View.of(store).msgs] == [35, 36, 37]


def test_truncate_repeatedly_with_writes_between(open_store):
    store = open_store()
    fill(store, 50)
    store.truncate(41)
    fill(store, 3)
    store.truncate(12)
    sync(store)
    fill(store, 20)
    store.remove(20)
    store.truncate(30)
    assert [m.seq for m in View.of(store).msgs] == [*range(1, 20), *range(21, 31)]
    assert [store.load(s).data for s in (12, 13)] == [b"m12", b"m13"]
    same_after_reopen(store, open_store)


def test_truncate_on_a_closed_store_is_refused(open_store):
    store = open_store()
    fill(store, 3)
    store.close()
    with pytest.raises(StoreError):
        store.truncate(1)


# ---------------------------------------------------------------------------------------------
# The FileStore's files


def file_store(directory, **opts) -> FileStore:
    return FileStore(str(directory), StoreConfig("t"),
                     FileStoreOptions(**{**OPTS.__dict__, **opts}))


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def damage(seg_path: str, seq: int, at: int = -6) -> None:
    """Flip a byte of message `seq`'s record (at offset `at` from its start, or its end when
    negative)."""
    with open(seg_path, "rb") as f:
        buf = f.read()
    rec = next(r for r in record.scan(buf, record.SEGMENT_HEADER_SIZE)
               if isinstance(r, record.Record) and r.seq == seq)
    pos = rec.offset + (at if at >= 0 else rec.length + at)
    with open(seg_path, "r+b") as f:
        f.seek(pos)
        f.write(bytes([buf[pos] ^ 0x5A]))


def test_segments_above_are_removed_and_the_cut_one_rewritten(tmp_path):
    fs = file_store(tmp_path)
    fill(fs, 55)
    fs.close()
    fs = file_store(tmp_path)
    assert [n for n in listing(tmp_path) if n.endswith(".seg")] == [
        f"0000000{i}.seg" for i in range(1, 7)]
    fs.truncate(25)
    # 3 holds 21..25 now and is the active segment again (no index); 4..6 are gone.
    assert listing(tmp_path) == ["00000001.idx", "00000001.seg", "00000002.idx", "00000002.seg",
                                 "00000003.seg", "store.meta"]
    with open(tmp_path / "00000003.seg", "rb") as f:
        buf = f.read()
    recs = [r for r in record.scan(buf, record.SEGMENT_HEADER_SIZE)]
    assert all(isinstance(r, record.Record) for r in recs)
    assert [r.seq for r in recs if r.kind == record.KIND_MSG] == list(range(21, 26))
    assert recs[-1].kind == record.KIND_PURGE
    assert record.purge_info(buf, recs[-1]) == (1, 25, ts_of(25))
    fill(fs, 20)  # rolls into new segments after 3
    fs.close()
    fs = file_store(tmp_path)
    assert [m.seq for m in View.of(fs).msgs] == list(range(1, 46))
    assert fs.load(26).data == b"m26"
    fs.close()


def test_tombstones_kept_in_removed_segments_still_delete(tmp_path):
    """Removals of old messages are written as tombstones into the segment active at the time:
    when that segment is removed, they must move into the cut one."""
    fs = file_store(tmp_path)
    fill(fs, 28)
    for seq in (3, 5, 14, 22):
        fs.remove(seq)
    sync(fs)  # the tombstones land in segment 3 (seqs 21..)
    fill(fs, 30)  # segments 4..6
    for seq in (7, 15, 24, 44):
        fs.remove(seq)
    sync(fs)  # in segment 6
    fs.truncate(12)  # cut in segment 2: segments 3..6 go
    expected = [s for s in range(1, 13) if s not in (3, 5, 7)]
    assert [m.seq for m in View.of(fs).msgs] == expected
    assert fs.deleted() == [3, 5, 7]
    fs.close()
    fs = file_store(tmp_path)
    assert [m.seq for m in View.of(fs).msgs] == expected
    fill(fs, 5)  # 13..17: sequences that had tombstones before (14, 15) are fine now
    assert fs.load(14).data == b"m14" and fs.load(15).data == b"m15"
    fs.close()
    fs = file_store(tmp_path)
    assert [m.seq for m in View.of(fs).msgs] == expected + list(range(13, 18))
    fs.close()


def test_truncate_below_every_segment_keeps_only_the_numbering(tmp_path):
    fs = file_store(tmp_path)
    fill(fs, 55)
    fs.purge(seq=41)
    sync(fs)  # segments 1..4 (1..40) are unlinked: the first one left starts at 41
    assert fs._bases[0] == 41
    fs.truncate(40)
    assert (fs.first_seq, fs.last_seq, fs.msgs, fs.state().last_ts) == (41, 40, 0, 0)
    assert [n for n in listing(tmp_path) if n.endswith(".seg")] == ["00000005.seg"]
    fs.close()
    fs = file_store(tmp_path)
    assert (fs.first_seq, fs.last_seq, fs.msgs) == (41, 40, 0)
    assert fs.store_msg("a", b"", b"x", 1) == 41
    fs.close()


def test_damage_below_the_cut_stays_reported(tmp_path):
    fs = file_store(tmp_path)
    fill(fs, 40)
    fs.close()
    seg = str(tmp_path / "00000002.seg")
    damage(seg, 15)
    fs = file_store(tmp_path)
    assert fs.state().damaged == [(15, 15)]
    fs.truncate(17)
    assert fs.state().damaged == [(15, 15)]
    with pytest.raises(CorruptRecord):
        fs.load(15)
    assert fs.load(16).data == b"m16" and fs.last_seq == 17
    fs.close()
    fs = file_store(tmp_path)
    assert fs.state().damaged == [(15, 15)] and fs.msgs == 16
    fs.truncate(15)  # the damaged bytes are right before the cut: still reported
    st = fs.state()
    assert (st.damaged, st.last_seq, st.last_ts, st.msgs) == ([(15, 15)], 15, ts_of(14), 14)
    assert fs.deleted() == []
    fs.close()
    fs = file_store(tmp_path)
    assert fs.state().damaged == [(15, 15)] and fs.last_seq == 15
    fs.truncate(14)  # the damaged record goes with the tail
    assert fs.state().damaged == [] and fs.msgs == 14
    fs.close()


def test_cutting_back_to_just_before_the_damage_drops_the_damaged_bytes(tmp_path):
    """A replica cuts its store back to before a damaged record and copies the rest from its
    peers: the damaged bytes must go with the cut, or they would sit between the kept records
    and the copied ones forever."""
    fs = file_store(tmp_path)
    fill(fs, 18)
    fs.close()
    seg = str(tmp_path / "00000002.seg")
    damage(seg, 15)
    fs = file_store(tmp_path)
    assert fs.state().damaged == [(15, 15)]
    fs.truncate(14)
    fill(fs, 4)  # 15..18 again, copied from a peer
    fs.close()
    with open(seg, "rb") as f:
        buf = f.read()
    items = list(record.scan(buf, record.SEGMENT_HEADER_SIZE))
    assert not [i for i in items if not isinstance(i, record.Record)], "damaged bytes kept"
    fs = file_store(tmp_path)
    assert fs.state().damaged == [] and [m.seq for m in View.of(fs).msgs] == list(range(1, 19))
    fs.close()


def test_damage_found_by_a_read_stays_known(tmp_path):
    fs = file_store(tmp_path, verify_segments=False)
    fill(fs, 40)
    fs.close()
    seg = str(tmp_path / "00000001.seg")
    damage(seg, 4)
    fs = file_store(tmp_path, verify_segments=False)
    with pytest.raises(CorruptRecord):
        fs.load(4)
    removals = fs.removals
    fs.truncate(30)
    assert fs.state().damaged == [(4, 4)] and fs.msgs == 29
    assert fs.removals == removals + 10
    with pytest.raises(CorruptRecord):
        fs.load(4)
    fs.close()


def test_outstanding_jobs_are_run_first(tmp_path):
    fs = file_store(tmp_path)
    fill(fs, 30)
    job = fs.begin_sync()
    fill(fs, 5)
    fs.truncate(20)
    job.run()  # the caller's worker thread gets to it late: it was run already
    fs.finish_sync(job)
    fill(fs, 2)
    sync(fs)
    assert [m.seq for m in View.of(fs).msgs] == list(range(1, 23))
    fs.close()


def test_a_failed_write_leaves_the_store_untruncated_and_open(tmp_path, monkeypatch):
    fs = file_store(tmp_path)
    fill(fs, 30)
    sync(fs)
    before = View.of(fs)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", full)
        with pytest.raises(StoreError, match="No space"):
            fs.truncate(10)
    assert View.of(fs) == before
    assert not [n for n in listing(tmp_path) if "truncate" in n]
    fs.truncate(10)
    assert fs.last_seq == 10
    fs.close()


def test_a_damaged_intent_is_refused(tmp_path):
    fs = file_store(tmp_path)
    fill(fs, 5)
    fs.close()
    path = tmp_path / truncation.INTENT
    durable.write_checked(str(path), b'{"last_seq": 3, "segment": "00000001.seg"}')
    with pytest.raises(DamagedFile):
        file_store(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedFile):
        file_store(tmp_path)


# ---------------------------------------------------------------------------------------------
# Crashes and power loss


@pytest.fixture
def journal(tmp_path):
    path = str(tmp_path / "journal")
    durable.set_journal(path)
    yield path
    durable.set_journal(None)


def crash(fs: FileStore, journal: str, directory, tail: str = "cut", seed: int = 0) -> FileStore:
    """The process dies (nothing more is written or closed), the power goes, the store is
    opened again."""
    fs._release()
    durable.simulate_power_loss(journal, str(directory), tail=tail, seed=seed)
    return file_store(directory)


def prepared(directory) -> tuple[FileStore, View, View]:
    """A synced store spanning segments with deletions everywhere, and what it looks like
    before and after a truncate to 23 (computed on a copy in memory)."""
    fs = file_store(directory)
    fill(fs, 12)
    fs.skip_msg(5)  # 13
    fill(fs, 40)  # 14..53
    for seq in (2, 9, 17, 23, 30, 41, 53):
        fs.remove(seq)
    sync(fs)
    before = View.of(fs)
    ms = MemoryStore(StoreConfig("t"))
    ms.skip_msgs(1)
    for seq in range(1, 54):
        m = fs.load(seq)
        if m is None:
            assert ms.skip_msg(ts_of(seq)) == seq
        else:
            assert ms.store_msg(m.subject, m.hdr, m.data, m.ts, m.ttl) == seq
    ms.truncate(23)
    # The MemoryStore answers as the FileStore must, except for bytes (each counts its own
    # per-message overhead).
    after = View.of(ms)
    file_bytes = sum(fs.msg_size(m.subject, m.hdr, m.data) for m in after.msgs)
    after.state = (after.state[0], file_bytes, *after.state[2:])
    return fs, before, after


@pytest.mark.parametrize("tail", ["cut", "tear", "pages"])
def test_power_loss_right_after_truncate_before_a_sync(tmp_path, journal, tail):
    directory = tmp_path / "store"
    fs, before, after = prepared(directory)
    fs.truncate(23)
    assert View.of(fs) == after
    fs = crash(fs, journal, directory, tail)
    assert View.of(fs) in (before, after)  # the contract; this FileStore is truncated already
    assert View.of(fs) == after
    assert fs.store_msg("a", b"", b"again", 1) == 24
    fs.close()


@pytest.mark.parametrize("tail", ["cut", "tear", "pages"])
def test_power_loss_after_truncate_writes_and_a_sync(tmp_path, journal, tail):
    directory = tmp_path / "store"
    fs, _, after = prepared(directory)
    fs.truncate(23)
    fill(fs, 15)  # 24..38, in segments that reuse the names of the removed ones
    sync(fs)
    fill(fs, 4)  # 39..42, unsynced: may be lost or torn
    synced = [m.seq for m in after.msgs] + list(range(24, 39))
    fs = crash(fs, journal, directory, tail, seed=7)
    st = fs.state()
    for lo, hi in st.damaged:  # only unsynced messages may be damaged by a torn tail
        assert lo > 38
        for seq in range(lo, hi + 1):
            fs.remove(seq)
    seqs = [m.seq for m in View.of(fs).msgs]
    assert seqs[:len(synced)] == synced and set(seqs[len(synced):]) <= set(range(39, 43))
    assert all(fs.load(s).data == f"m{s}".encode() for s in seqs)
    fs.close()


def test_power_loss_before_the_sync_of_writes_after_truncate(tmp_path, journal):
    directory = tmp_path / "store"
    fs, _, after = prepared(directory)
    fs.truncate(23)
    fill(fs, 15)  # never synced: may be lost, but never mixed with the old 24..53
    fs = crash(fs, journal, directory)
    assert View.of(fs) == after
    fs.close()


class Killed(BaseException):
    """The process dies at this point (no handler in the store catches it)."""


def kill_after(patch: pytest.MonkeyPatch, allowed: int) -> None:
    """Let `allowed` file operations of `storage.durable` happen, then die at the next one."""
    calls = 0

    def killer(name, real):
        def op(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls > allowed:
                raise Killed(name)
            return real(*args, **kwargs)
        return op

    for name in ("create", "pwrite_all", "fdatasync", "rename", "unlink", "fsync_dir"):
        patch.setattr(durable, name, killer(name, getattr(durable, name)))


@pytest.mark.parametrize("tail", ["cut", "tear"])
def test_killed_at_every_step_of_a_truncate(tmp_path, journal, monkeypatch, tail):
    """Kill the process before each file operation a truncate makes (writing the new segment,
    the intent, renaming, unlinking, syncing directories, reloading), then cut the power:
    opening again shows the store truncated or not, never anything between."""
    step = 0
    while True:
        directory = tmp_path / f"store{step}"
        fs, before, after = prepared(directory)
        with monkeypatch.context() as m:
            kill_after(m, step)
            try:
                fs.truncate(23)
                done = True
            except Killed:
                done = False
        fs = crash(fs, journal, directory, tail, seed=step)
        got = View.of(fs)
        assert got in (before, after), step
        assert not [n for n in listing(directory) if "truncate" in n or n.endswith("tmp")]
        # Writing goes on from whichever it is, and survives another reopen.
        n = fs.last_seq
        fill(fs, 3)
        fs.close()
        fs = file_store(directory)
        assert [m.seq for m in View.of(fs).msgs][-3:] == [n + 1, n + 2, n + 3]
        assert [m.seq for m in View.of(fs).msgs][:-3] == [m.seq for m in got.msgs]
        fs.close()
        if done:
            break
        step += 1
    assert step > 10  # every step was visited


def test_a_tombstone_above_the_cut_never_deletes_a_later_message(tmp_path):
    """A record found damaged by a read and then accepted as lost leaves only its tombstone
    after the damaged bytes: the cut must take that tombstone too, or the new message that gets
    the same sequence would be deleted by it at the next open."""
    fs = file_store(tmp_path)
    for seq in range(1, 6):  # big enough that the synced bytes leave the in-memory tail
        fs.store_msg("a", b"", bytes([seq]) * 1000, ts_of(seq))
    sync(fs)
    seg = str(tmp_path / "00000001.seg")
    damage(seg, 5, at=100)  # before the part of the file still kept in memory
    with pytest.raises(CorruptRecord):
        fs.load(5)
    assert fs.remove(5)  # the loss is accepted: DEL [5] after the damaged bytes
    sync(fs)
    fs.truncate(4)
    assert fs.state().damaged == []
    assert fs.store_msg("a", b"", b"new 5", 5) == 5
    fs.close()
    fs = file_store(tmp_path)
    assert fs.load(5).data == b"new 5"
    assert (fs.msgs, fs.deleted(), fs.state().damaged) == (5, [], [])
    fs.close()
