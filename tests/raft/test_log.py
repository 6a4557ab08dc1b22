"""raft.log on real files: recovery (torn tail, damage, truncation), compaction, snapshots, the
vouch mark, and a SIGKILL + power-loss test through storage.durable's journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from raft import records
from raft.log import RaftLog, seg_name
from raft.messages import Entry, EntryType
from raft.state import HardState, Ready, Snapshot, SnapshotMeta
from storage import durable

VOTERS = frozenset({"n1", "n2", "n3"})


def entries(lo: int, hi: int, term: int) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, b"e%d@%d" % (i, term)) for i in range(lo, hi + 1)]


def persist(log: RaftLog, **fields) -> None:
    rd = Ready(**fields)
    if rd.entries and rd.hard_state is None:
        rd.hard_state = log.hard_state
    log.stage(rd)
    log.sync_now()


def reopen(log: RaftLog, path: Path, **kw) -> RaftLog:
    log.close()
    return RaftLog.open(str(path), **kw)


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("seg-*"))


def test_append_reopen_and_hard_state(tmp_path):
    log = RaftLog.open(str(tmp_path))
    assert log.boot == 1 and log.vouch.can_vouch and log.entries == []
    persist(log, hard_state=HardState(3, "n2", 0), entries=entries(1, 50, 3))
    persist(log, hard_state=HardState(3, "n2", 40), entries=entries(51, 60, 3))
    log = reopen(log, tmp_path)
    assert [e.index for e in log.entries] == list(range(1, 61))
    assert log.entries[41] == Entry(3, 42, EntryType.NORMAL, b"e42@3")
    assert log.hard_state == HardState(3, "n2", 40)
    assert log.boot == 2 and log.vouch.can_vouch and log.mark[0] == 60
    log.close()


def test_torn_tail_is_cut_and_unacknowledged_bytes_do_not_matter(tmp_path):
    log = RaftLog.open(str(tmp_path))
    persist(log, hard_state=HardState(1, None, 0), entries=entries(1, 20, 1))
    log.close()
    seg = segments(tmp_path)[-1]
    good = seg.stat().st_size
    with open(seg, "ab") as f:  # a record that never finished (the crash came mid-write)
        f.write(records.entry_record(entries(21, 21, 1)[0])[:-3])
    log = RaftLog.open(str(tmp_path))
    assert [e.index for e in log.entries] == list(range(1, 21))
    assert log.vouch.can_vouch, "a torn record beyond the mark is not damage"
    assert seg.stat().st_size == good
    assert any("incomplete record" in r for r in log.report)
    persist(log, entries=entries(21, 25, 1))  # appending continues cleanly
    log = reopen(log, tmp_path)
    assert log.entries[-1].index == 25
    log.close()


@pytest.mark.parametrize("damage", ["flip", "zero", "truncate", "delete-segment"])
def test_damage_below_the_mark_means_the_node_cannot_vouch(tmp_path, damage):
    log = RaftLog.open(str(tmp_path), segment_bytes=600)
    for lo in range(1, 60, 10):
        persist(log, hard_state=HardState(2, "n1", lo), entries=entries(lo, lo + 9, 2))
    log.close()
    segs = segments(tmp_path)
    assert len(segs) >= 4
    victim = segs[1]
    raw = bytearray(victim.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x10
        victim.write_bytes(raw)
    elif damage == "zero":
        raw[100:400] = bytes(300)
        victim.write_bytes(raw)
    elif damage == "truncate":
        victim.write_bytes(raw[:len(raw) // 2])
    else:
        victim.unlink()
    log = RaftLog.open(str(tmp_path), segment_bytes=600)
    v = log.vouch
    assert not v.can_vouch and v.mark == 60 and "below the acknowledged 60" in v.reason
    assert log.entries and log.entries[-1].index < 60
    assert [e.index for e in log.entries] == list(range(1, len(log.entries) + 1))
    # Repair: entries from a leader bring the log back to the mark; the mark never dropped.
    last = log.entries[-1].index
    persist(log, entries=entries(last + 1, 55, 2))
    log = reopen(log, tmp_path, segment_bytes=600)
    assert not log.vouch.can_vouch, "a restart during the repair forgot what was acknowledged"
    last = log.entries[-1].index
    persist(log, entries=entries(last + 1, 62, 2))
    log = reopen(log, tmp_path, segment_bytes=600)
    assert log.vouch.can_vouch and log.entries[-1].index == 62
    log.close()


def test_truncation_is_durable_and_never_resurrected(tmp_path):
    journal = str(tmp_path / "journal")
    durable.set_journal(journal)
    try:
        root = tmp_path / "log"
        log = RaftLog.open(str(root))
        persist(log, hard_state=HardState(1, "n1", 0), entries=entries(1, 10, 1))
        # A new leader (term 2) disagrees from index 6: cut and append its entries.
        persist(log, hard_state=HardState(2, "n2", 5), truncate_from=6,
                entries=entries(6, 8, 2))
        assert log.mark == (8, 2)
        log.close()
        durable.simulate_power_loss(journal, str(root), tail="tear", seed=1)
        log = RaftLog.open(str(root))
        assert [(e.index, e.term) for e in log.entries] == \
            [(i, 1) for i in range(1, 6)] + [(i, 2) for i in range(6, 9)]
        assert log.vouch.can_vouch
        # Truncated again, then power lost before that became durable: the older state (which
        # was acknowledged) comes back whole, never a mix.
        log.stage(Ready(hard_state=HardState(3, "n3", 5), truncate_from=7,
                        entries=entries(7, 7, 3)))
        log.close()
        durable.simulate_power_loss(journal, str(root), tail="cut")
        log = RaftLog.open(str(root))
        assert [(e.index, e.term) for e in log.entries][-3:] == [(6, 2), (7, 2), (8, 2)]
        assert log.vouch.can_vouch
        log.close()
    finally:
        durable.set_journal(None)


def test_compaction_drops_old_segments_and_reopens_from_the_snapshot(tmp_path):
    log = RaftLog.open(str(tmp_path), segment_bytes=500)
    persist(log, hard_state=HardState(1, None, 0), entries=entries(1, 80, 1))
    before = len(segments(tmp_path))
    meta = SnapshotMeta(50, 1, VOTERS)
    persist(log, compact=Snapshot(meta, b"state@50"))
    assert len(segments(tmp_path)) < before
    log = reopen(log, tmp_path, segment_bytes=500)
    assert log.snapshot_meta == meta and log.read_snapshot() == b"state@50"
    assert [e.index for e in log.entries] == list(range(51, 81))
    assert log.vouch.can_vouch
    log.close()


def test_installing_a_snapshot_that_replaces_the_log(tmp_path):
    log = RaftLog.open(str(tmp_path), segment_bytes=500)
    persist(log, hard_state=HardState(1, None, 0), entries=entries(1, 40, 1))
    # The leader's snapshot at 30 has term 2: our 30 (term 1) is from another history.
    meta = SnapshotMeta(30, 2, VOTERS)
    persist(log, snapshot=Snapshot(meta, b"leader state"), snapshot_reset=True,
            hard_state=HardState(2, None, 30), entries=entries(31, 33, 2))
    assert log.mark == (33, 2)
    log = reopen(log, tmp_path, segment_bytes=500)
    assert log.snapshot_meta == meta and [e.index for e in log.entries] == [31, 32, 33]
    assert log.vouch.can_vouch and log.hard_state.commit == 30
    log.close()


def test_hard_state_survives_one_damaged_copy_but_not_two(tmp_path):
    log = RaftLog.open(str(tmp_path))
    persist(log, hard_state=HardState(5, "n3", 0), entries=entries(1, 3, 5))
    log.close()
    a, b = tmp_path / "hardstate.a", tmp_path / "hardstate.b"
    a.write_bytes(a.read_bytes()[:-1] + b"\x00")
    log = RaftLog.open(str(tmp_path))
    assert log.hard_state.term == 5 and log.hard_state.vote == "n3" and log.vouch.can_vouch
    log.close()
    a.write_bytes(b"junk")
    b.write_bytes(b"junk")
    log = RaftLog.open(str(tmp_path))
    assert log.vouch.amnesia and not log.vouch.can_vouch
    log = reopen(log, tmp_path)  # sticky: the rewritten files remember the loss
    assert log.vouch.amnesia and not log.vouch.can_vouch
    log.close()


def test_vouch_mark_damage_alone_is_recovered_from_the_log(tmp_path):
    log = RaftLog.open(str(tmp_path), segment_bytes=300)
    persist(log, hard_state=HardState(1, None, 0), entries=entries(1, 30, 1))
    log.close()
    (tmp_path / "vouch").write_bytes(os.urandom(80))
    seg = segments(tmp_path)[-1]  # a torn tail too: what any crash may leave
    seg.write_bytes(seg.read_bytes()[:-5])
    log = RaftLog.open(str(tmp_path), segment_bytes=300)
    assert log.vouch.can_vouch and log.mark == (29, 1)
    log.close()
    # Both the mark and the log (before its last segment) damaged: what was acknowledged is
    # unknown for good.
    (tmp_path / "vouch").write_bytes(os.urandom(80))
    seg = segments(tmp_path)[0]
    seg.write_bytes(seg.read_bytes()[:-5])
    log = RaftLog.open(str(tmp_path), segment_bytes=300)
    assert log.vouch.amnesia and not log.vouch.can_vouch
    log.close()


def test_damaged_snapshot_is_never_used(tmp_path):
    log = RaftLog.open(str(tmp_path), segment_bytes=400)
    persist(log, hard_state=HardState(1, None, 0), entries=entries(1, 40, 1))
    persist(log, compact=Snapshot(SnapshotMeta(30, 1, VOTERS), b"state@30"))
    log.close()
    snap = tmp_path / "snapshot"
    raw = bytearray(snap.read_bytes())
    raw[-1] ^= 1
    snap.write_bytes(raw)
    log = RaftLog.open(str(tmp_path), segment_bytes=400)
    assert log.snapshot_meta is None and log.entries == []
    assert not log.vouch.can_vouch and any("snapshot damaged" in r for r in log.report)
    log.close()


# ---------------------------------------------------------------------------------------------
# SIGKILL, then power loss

CHILD = r"""
import sys, zlib
from raft.log import RaftLog
from raft.messages import Entry, EntryType
from raft.state import HardState, Ready

log = RaftLog.open(sys.argv[1], segment_bytes=4096)
rng = __import__("random").Random(int(sys.argv[2]))
last = log.entries[-1].index if log.entries else 0
term = max(log.hard_state.term, 1)
chain = {}
for e in log.entries:
    chain[e.index] = zlib.crc32(e.data, zlib.crc32(b"%d" % e.term, chain.get(e.index - 1, 0)))
while True:
    rd = Ready(hard_state=HardState(term, None, 0))
    if last > 5 and rng.random() < 0.1:  # a conflict: a new term rewrites the last few
        term += 1
        rd.hard_state = HardState(term, None, 0)
        rd.truncate_from = last - rng.randint(0, 4)
        last = rd.truncate_from - 1
    for _ in range(rng.randint(1, 30)):
        last += 1
        data = b"%d:%d:" % (last, term) + b"x" * rng.randint(0, 80)
        e = Entry(term, last, EntryType.NORMAL, data)
        chain[last] = zlib.crc32(e.data, zlib.crc32(b"%d" % term, chain.get(last - 1, 0)))
        rd.entries.append(e)
    log.stage(rd)
    job = log.begin_sync()
    job.run()
    log.finish_sync(job)
    print(last, chain[last], flush=True)
"""


def _chain(entries_: list[Entry]) -> dict[int, int]:
    out: dict[int, int] = {}
    for e in entries_:
        out[e.index] = zlib.crc32(e.data, zlib.crc32(b"%d" % e.term, out.get(e.index - 1, 0)))
    return out


@pytest.mark.parametrize("tail", ["cut", "tear", "pages"])
def test_sigkill_then_power_loss_keeps_every_synced_entry(tmp_path, tail):
    journal = str(tmp_path / "journal")
    root = str(tmp_path / "log")
    env = {**os.environ, durable.JOURNAL_ENV: journal}
    repo = str(Path(__file__).resolve().parents[2])
    for round_ in range(3):  # crash, recover, keep writing, crash again
        child = subprocess.Popen([sys.executable, "-c", CHILD, root, str(round_)], env=env,
                                 cwd=repo, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        synced: tuple[int, int] | None = None
        for lines, line in enumerate(child.stdout, start=1):
            index, crc = map(int, line.split())
            synced = (index, crc)
            if lines >= 150:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert synced is not None, "the child died early"
        durable.simulate_power_loss(journal, root, tail=tail, seed=round_)
        log = RaftLog.open(root, segment_bytes=4096)
        try:
            assert log.vouch.can_vouch, (log.vouch, log.report)
            chain = _chain(log.entries)
            index, crc = synced
            assert chain.get(index) == crc, f"entries up to {index} changed or were lost"
            assert [e.index for e in log.entries] == list(range(1, len(log.entries) + 1))
        finally:
            log.close()


def test_segment_names_sort_numerically():
    assert seg_name(9) < seg_name(10) < seg_name(10**9)


# ---------------------------------------------------------------------------------------------
# A crash between any two steps of a group commit (on the simulator's disk, which keeps only
# what was synced, optionally plus a torn part of the write in progress)

def _job_cases():
    from raft.state import Snapshot as Snap

    def truncation(log):
        log.stage(Ready(hard_state=HardState(2, "n2", 5), truncate_from=6,
                        entries=entries(6, 8, 2)))

    def install(log):
        log.stage(Ready(hard_state=HardState(2, None, 12),
                        snapshot=Snap(SnapshotMeta(12, 2, VOTERS), b"leader state"),
                        snapshot_reset=True, entries=entries(13, 14, 2)))

    def compaction(log):
        log.stage(Ready(compact=Snap(SnapshotMeta(9, 1, VOTERS), b"state@9"),
                        hard_state=HardState(1, None, 10), entries=entries(11, 40, 1)))

    return {"truncation": truncation, "install": install, "compaction": compaction}


@pytest.mark.parametrize("case", sorted(_job_cases()))
def test_a_crash_between_any_two_steps_of_a_job_leaves_a_log_it_can_vouch_for(case):
    import random

    from raft.testing.disk import SimFiles, SimWrite

    job_of = _job_cases()[case]
    before = after = None
    k = 0
    while True:
        for torn in (False, True):
            files = SimFiles()
            log = RaftLog(files, segment_bytes=300)
            persist(log, hard_state=HardState(1, "n1", 10), entries=entries(1, 10, 1))
            old = [(e.index, e.term) for e in entries(1, 10, 1)]
            job_of(log)
            job = log.begin_sync()
            for step in job.steps[:k]:
                step.run()
            if torn and k < len(job.steps) and isinstance(job.steps[k], SimWrite):
                job.steps[k].write_only()
            files.crash(random.Random(k), torn=torn)
            got = RaftLog(files, segment_bytes=300)
            assert got.vouch.can_vouch, (case, k, torn, got.vouch, got.report)
            state = [(e.index, e.term) for e in got.entries]
            meta = got.snapshot_meta
            before = before or old
            if k == len(job.steps):
                after = (meta, state)
            # Entries the job did not change are never lost.
            keep = {"truncation": 5, "install": 0, "compaction": 10}[case]
            base = meta.index if meta else 0
            assert [x for x in old if base < x[0] <= keep] == \
                [x for x in state if x[0] <= keep], (case, k, torn, state)
        if k == len(job.steps):
            break
        k += 1
    assert after is not None and after[1] != before
