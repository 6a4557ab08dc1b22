"""The persistent Raft log of one group: CRC'd segments, hard state, snapshot, vouch mark.

Layout of the directory (formats in `raft.records`):

    seg-0000000001 ...   log segments, appended through `storage.durable.AppendFile`
    hardstate.a/.b       term, vote, boot counter: two copies, each write-fsync-rename-fsync dir
    snapshot             the latest snapshot (checked file)
    vouch                the vouch mark: highest index ever made durable here (two slots)

Durability follows the store contract (`storage.store`): `stage(ready)` encodes a Ready on the
loop thread, `begin_sync()` returns a job whose `run()` (in a worker thread) does the I/O, and
`finish_sync(job)` records what became durable. One job at a time. The steps of a job, in order
(the order is what makes every crash point recoverable):

1. lower the vouch mark first, when this job cuts the log below it (a conflict truncation or a
   snapshot that replaces the log), to an entry the log holds before and after the cut: never
   leave a mark naming an entry a legitimately shortened log no longer holds;
2. hard state, both copies (only when term or vote changed);
3. snapshot file (install or compaction): before any record that relies on it;
4. segment bytes (entries, TRUNCATE / RESET / COMMIT records), fdatasync each; dirsync when a
   segment was created;
5. unlink segments a snapshot made obsolete, dirsync;
6. raise the vouch mark to the new last entry, (index, term), only after the log bytes are
   durable, so the mark never names an entry the log does not hold.

Suffix truncation is durable by a TRUNCATE record (not by cutting the file): a follower cannot
resurrect truncated entries after a crash, and nothing is ever rewritten in place.

Recovery (`RaftLog(files)`): read both hard-state copies (use the newer readable one), the
snapshot, the mark and the segments; cut a torn or damaged record and drop everything after it;
join the log to the snapshot; then decide whether this node can vouch for its log
(`raft.state.Vouch`, rule in raft/README.md). A failed sync poisons the log (`LogFailed`): the
node must stop and recover from disk, since acknowledgements can no longer be trusted.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

from raft import records
from raft.files import DirFiles, Files, Step
from raft.messages import Entry
from raft.records import Mark
from raft.state import HardState, Ready, Snapshot, SnapshotMeta, Vouch
from storage.durable import DamagedFile
from storage.store import SyncJob

log = logging.getLogger("raft")

DEFAULT_SEGMENT_BYTES = 64 << 20
HARD_STATE_FILES = ("hardstate.a", "hardstate.b")
SNAPSHOT_FILE = "snapshot"
VOUCH_FILE = "vouch"
_SEG = "seg-"


def seg_name(number: int) -> str:
    return f"{_SEG}{number:010d}"


class LogFailed(RuntimeError):
    """A sync failed: what is durable is unknown, so the log refuses further use."""


Point = tuple[int, int]  # (index, term): names one entry
# An open append file of the `Files` in use: RaftLog only hands it back to that `Files`.
AppendHandle = object


class _Terms:
    """The terms of the entries the files hold, as runs (first index, term): enough to name
    any of them without keeping the entries."""

    def __init__(self, base: Point, entries: list[Entry]) -> None:
        self.base = base
        self.runs: list[Point] = []
        for e in entries:
            self.append(e.index, e.term)

    def append(self, index: int, term: int) -> None:
        if not self.runs or self.runs[-1][1] != term:
            self.runs.append((index, term))

    def truncate(self, index: int) -> None:
        """Forget entries >= index."""
        while self.runs and self.runs[-1][0] >= index:
            self.runs.pop()

    def reset(self, base: Point) -> None:
        self.base, self.runs = base, []

    def compact(self, base: Point) -> None:
        """The log now starts after the snapshot `base`."""
        covering = [r for r in self.runs if r[0] <= base[0] + 1]
        later = [r for r in self.runs if r[0] > base[0] + 1]
        self.runs = ([(base[0] + 1, covering[-1][1])] if covering else []) + later
        self.base = base

    def at(self, index: int) -> int:
        if index <= self.base[0]:
            return self.base[1] if index == self.base[0] else 0
        k = bisect.bisect_right(self.runs, (index, 1 << 64)) - 1
        return self.runs[k][1] if k >= 0 else 0


@dataclass(eq=False)
class _Segment:
    name: str
    number: int
    handle: AppendHandle | None  # open while appending or while a job holds it
    max_index: int = 0  # the highest entry index ever written to it


@dataclass
class _Plan:
    low: Point  # the lowest entry the log holds at every moment of this plan
    hardstate: bytes | None = None
    snapshot: bytes | None = None
    dirty: list[_Segment] = field(default_factory=list)
    new_segment: bool = False
    unlink: list[_Segment] = field(default_factory=list)


class LogSync(SyncJob):
    """One group commit of the log (see the module docstring for the order of steps)."""

    def __init__(self, steps: list[Step], writes: list[tuple[_Segment, Step]], mark: Point,
                 last: int, unlinked: list[_Segment]) -> None:
        self.steps = steps
        self.writes = writes
        self.mark = mark
        self.last = last
        self.unlinked = unlinked

    def run(self) -> None:
        for step in self.steps:
            step.run()


class RaftLog:
    """A group's durable log. Also the `LogView` a `RaftNode` starts from."""

    def __init__(self, files: Files, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.files = files
        self.segment_bytes = segment_bytes
        self.report: list[str] = []  # what recovery found and did, for logs and tests
        self._hard_state = HardState()
        self._snapshot_meta: SnapshotMeta | None = None
        self._snapshot_cache: bytes | None = None
        self._entries: list[Entry] = []
        self._vouch = Vouch()
        self._boot = 0
        self._amnesia = False
        self._segs: list[_Segment] = []
        self._next_seg = 1
        self._hs_disk: tuple[int, str | None] = (0, None)
        self._commit_written = 0
        self._last = 0  # last index once everything staged is written
        self._durable_last = 0
        self._terms = _Terms((0, 0), [])
        self._floor: Point | None = None  # while the node cannot vouch: the mark to get back to
        self._mark: Point = (0, 0)  # the mark in the vouch file
        self._slot_seq = 0
        self._plan: _Plan | None = None
        self._inflight: LogSync | None = None
        self._failed = False
        self._recover()

    @classmethod
    def open(cls, directory: str, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> RaftLog:
        return cls(DirFiles(directory), segment_bytes=segment_bytes)

    # LogView ---------------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot_meta

    @property
    def entries(self) -> list[Entry]:
        return self._entries

    @property
    def vouch(self) -> Vouch:
        return self._vouch

    @property
    def boot(self) -> int:
        return self._boot

    def read_snapshot(self) -> bytes:
        if self._snapshot_cache is not None:
            return self._snapshot_cache
        _, data = records.decode_snapshot(self.files.read_checked(SNAPSHOT_FILE))
        return data

    @property
    def durable_last(self) -> int:
        return self._durable_last

    @property
    def mark(self) -> Point:
        return self._mark

    # Recovery --------------------------------------------------------------------------------

    def _recover(self) -> None:
        names = self.files.names()
        segs = sorted((int(n[len(_SEG):]), n) for n in names
                      if n.startswith(_SEG) and n[len(_SEG):].isdigit())
        if not segs and not set(names) & {*HARD_STATE_FILES, SNAPSHOT_FILE, VOUCH_FILE}:
            self._init_fresh()
            return
        self._next_seg = (segs[-1][0] + 1) if segs else 1
        hs, boot = self._recover_hard_state(names)
        meta, snap_damaged = self._recover_snapshot(names)
        mark, mark_damaged = self._recover_mark(names)

        stream = records.replay([(n, self.files.read(n)) for _, n in segs])
        joined = records.join(stream, meta)
        entries = joined.entries
        # Unreadable bytes at the end of the last segment are what any crash may leave; damage
        # anywhere else means the log itself lost something.
        tail_only = stream.damage is None or (bool(segs) and stream.damage.segment == segs[-1][1])
        clean = tail_only and not joined.problem and not snap_damaged
        self._normalize(segs, stream, meta, joined)

        si, st = (meta.index, meta.term) if meta else (0, 0)
        last = entries[-1].index if entries else si
        terms = _Terms((si, st), entries)
        top_term = max([hs.term, st] + [e.term for e in entries[-1:]])
        if top_term > hs.term:
            # The hard state is written before (in the same job as) any entry of its term, so
            # an older one is stale: which votes it cast since is unknown.
            self.report.append(f"term {hs.term} below the log's term {top_term}")
            self._amnesia = True
            hs = HardState(top_term, None)
        commit = max(si, min(stream.commit, last))
        trusted = commit  # entries up to the commit index are the cluster's committed ones
        reasons = []
        point: Point = (mark.index, mark.term) if mark else (0, 0)
        if mark_damaged:
            if clean:
                # One damaged file at a time: an intact log says what was made durable.
                self.report.append(f"vouch mark unreadable; log intact, mark set to {last}")
                point = (last, terms.at(last))
            else:
                self._amnesia = True
                self.report.append("vouch mark and log both damaged: acknowledged range unknown")
        if self._amnesia:
            reasons.append("lost its term/vote or vouch records: it may have voted or "
                           "acknowledged more than it can prove")
        zombies = False
        if point[0] <= trusted:
            pass  # what it acknowledged is inside the committed prefix it holds
        elif point[0] > last:
            reasons.append(f"log ends at {last}, below the acknowledged {point[0]}")
        elif terms.at(point[0]) != point[1]:
            # The log holds another entry where the mark names one: entries a lost TRUNCATE
            # record had voided are back. Only the committed prefix can be trusted.
            reasons.append(f"entry {point[0]} has term {terms.at(point[0])}, the acknowledged "
                           f"one {point[1]}: a truncation was lost; log cut to {trusted}")
            zombies = True
            entries = entries[:trusted - si]
            last = trusted
            terms.truncate(trusted + 1)
        can_vouch = not reasons
        self._floor = None if can_vouch else point
        self._hard_state = HardState(hs.term, hs.vote, commit)
        self._hs_disk = (hs.term, hs.vote)
        self._snapshot_meta = meta
        self._entries = entries
        self._terms = terms
        self._last = self._durable_last = last
        self._commit_written = commit
        self._boot = max(boot, mark.boot if mark else 0) + 1
        self._vouch = Vouch(can_vouch, point[0], point[1], self._amnesia, "; ".join(reasons))
        if reasons:
            log.error("raft log recovery: cannot vouch: %s", self._vouch.reason)
        # Persist the new boot (and a sticky amnesia flag), then a mark for the log as it is.
        self._write_hard_state_now()
        self._mark = self._target_mark()
        self._write_mark_now()
        self._open_active()
        if zombies:
            p = _Plan(low=self._mark)
            self._append(p, records.truncate_record(last + 1))
            self._plan = p
            self.sync_now()

    def _init_fresh(self) -> None:
        # Hard state first: any crash during initialisation leaves a readable hard state, so a
        # half-initialised directory is never mistaken for one that lost its votes.
        self._boot = 1
        self._write_hard_state_now()
        self._write_mark_now()
        self._open_active()

    def _recover_hard_state(self, names: list[str]) -> tuple[HardState, int]:
        found: list[tuple[HardState, int, bool]] = []
        for name in HARD_STATE_FILES:
            if name not in names:
                self.report.append(f"{name} missing")
                continue
            try:
                found.append(records.decode_hard_state(self.files.read_checked(name)))
            except (DamagedFile, ValueError, UnicodeDecodeError) as exc:
                self.report.append(f"{name} damaged: {exc}")
        if not found:
            # Both copies are written before any vote leaves, so one readable copy is enough;
            # none means this node may have voted in a term it no longer knows.
            self._amnesia = True
            return HardState(), 0
        self._amnesia = any(a for _, _, a in found)
        best = max(found, key=lambda f: (f[0].term, f[0].vote is not None))
        return best[0], max(b for _, b, _ in found)

    def _recover_snapshot(self, names: list[str]) -> tuple[SnapshotMeta | None, bool]:
        if SNAPSHOT_FILE not in names:
            return None, False
        try:
            meta, _ = records.decode_snapshot(self.files.read_checked(SNAPSHOT_FILE))
            return meta, False
        except (DamagedFile, ValueError, UnicodeDecodeError) as exc:
            self.report.append(f"snapshot damaged: {exc}")
            return None, True

    def _recover_mark(self, names: list[str]) -> tuple[Mark | None, bool]:
        if VOUCH_FILE not in names:
            self.report.append("vouch file missing")
            return None, True
        mark, damaged = records.decode_slots(self.files.read(VOUCH_FILE))
        if damaged:
            self.report.append("vouch file damaged")
        elif mark is not None:
            self._slot_seq = mark.seq
        return mark, damaged

    def _normalize(self, segs: list[tuple[int, str]], stream: records.Replayed,
                   meta: SnapshotMeta | None, joined: records.Joined) -> None:
        """Make the files say what recovery decided, so the next append continues cleanly."""
        keep = [n for _, n in segs]
        if stream.damage is not None:
            d = stream.damage
            self.report.append(f"{d.segment}: {d.reason} at offset {d.offset}; cut")
            at = keep.index(d.segment)
            later = keep[at + 1:]
            keep = keep[:at + 1]
            if d.offset <= 0:
                later.insert(0, keep.pop())
            else:
                self.files.cut(d.segment, d.offset)
            self.files.remove(later)
        if joined.reset:
            if joined.problem:
                self.report.append(f"log dropped: {joined.problem}")
            si, st = (meta.index, meta.term) if meta else (0, 0)
            name = seg_name(self._next_seg)
            self.files.write_new(name, records.header_record(self._next_seg)
                                 + records.reset_record(si, st))
            self._next_seg += 1
            self.files.remove(keep)
            keep = [name]
        for name in keep:  # the recovered bytes are durable from here on
            self.files.cut(name, len(self.files.read(name)))
        for name in keep:
            self._segs.append(_Segment(name, int(name[len(_SEG):]), None,
                                       stream.seg_max.get(name, 0)))

    def _open_active(self) -> None:
        if self._segs:
            seg = self._segs[-1]
            seg.handle = self.files.open_append(seg.name, len(self.files.read(seg.name)))
            return
        name = seg_name(self._next_seg)
        self.files.write_new(name, records.header_record(self._next_seg))
        size = len(records.header_record(self._next_seg))
        self._segs.append(_Segment(name, self._next_seg, self.files.open_append(name, size)))
        self._next_seg += 1

    def _write_hard_state_now(self) -> None:
        payload = records.encode_hard_state(self._hard_state, self._boot, self._amnesia)
        for name in HARD_STATE_FILES:
            self.files.write_checked(name, payload)

    def _write_mark_now(self) -> None:
        self._slot_seq += 2
        index, term = self._mark
        a = records.encode_slot(Mark(self._slot_seq - 1, index, term, self._boot))
        b = records.encode_slot(Mark(self._slot_seq, index, term, self._boot))
        first, second = (a, b) if self._slot_seq % 2 == 1 else (b, a)
        self.files.write_new(VOUCH_FILE, first + second)

    def _point(self, index: int) -> Point:
        return (index, self._terms.at(index))

    def _target_mark(self) -> Point:
        """The mark once everything staged is durable: the last entry, or, while the node is
        being repaired, at least the mark it must get back to."""
        if self._floor is not None and self._floor[0] > self._last:
            return self._floor
        return self._point(self._last)

    def _lowest(self, p: _Plan, point: Point) -> None:
        if point[0] < p.low[0]:
            p.low = point

    # Staging (loop thread) -------------------------------------------------------------------

    def stage(self, rd: Ready) -> None:
        """Encode what `rd` asks to persist; it becomes durable with the next sync job."""
        if self._failed:
            raise LogFailed("a previous sync failed")
        p = self._plan or _Plan(low=self._point(self._last))
        self._plan = p
        hs = rd.hard_state
        if hs is not None and (hs.term, hs.vote) != self._hs_disk:
            self._hs_disk = (hs.term, hs.vote)
            self._hard_state = hs
            p.hardstate = records.encode_hard_state(hs, self._boot, self._amnesia)
        cut = rd.truncate_from
        if rd.snapshot is not None:
            si = rd.snapshot.meta.index
            # The files must be replaced when they cannot continue after the snapshot: told so,
            # or they end before it, or entries it covers are to be cut.
            reset = rd.snapshot_reset or si > self._last or (cut is not None and cut <= si)
            self._stage_snapshot(p, rd.snapshot, reset)
            if reset:
                cut = None  # the RESET voided everything before it
        if cut is not None and self._terms.base[0] < cut <= self._last:
            self._lowest(p, self._point(cut - 1))
            self._append(p, records.truncate_record(cut))
            self._last = cut - 1
            self._terms.truncate(cut)
        for e in rd.entries:
            if e.index != self._last + 1:
                raise ValueError(f"entry {e.index} does not follow {self._last}")
            seg = self._segs[-1]
            if self.files.length(seg.handle) >= self.segment_bytes:
                seg = self._rotate(p)
            self._append(p, records.entry_record(e))
            seg.max_index = max(seg.max_index, e.index)
            self._terms.append(e.index, e.term)
            self._last = e.index
        if rd.compact is not None:
            self._stage_snapshot(p, rd.compact, reset=False)
        if hs is not None and min(hs.commit, self._last) > self._commit_written:
            self._commit_written = min(hs.commit, self._last)
            self._append(p, records.commit_record(self._commit_written))

    def _append(self, p: _Plan, data: bytes) -> None:
        seg = self._segs[-1]
        self.files.append(seg.handle, data)
        if not p.dirty or p.dirty[-1] is not seg:
            p.dirty.append(seg)

    def _rotate(self, p: _Plan) -> _Segment:
        number = self._next_seg
        self._next_seg += 1
        seg = _Segment(seg_name(number), number, self.files.create_append(seg_name(number)))
        self._segs.append(seg)
        p.new_segment = True
        self._append(p, records.header_record(number))
        return seg

    def _stage_snapshot(self, p: _Plan, snap: Snapshot, reset: bool) -> None:
        meta = snap.meta
        if self._snapshot_meta is not None and meta.index < self._snapshot_meta.index:
            return  # an older snapshot than the one we hold: nothing to do
        p.snapshot = records.encode_snapshot(meta, snap.data)
        self._snapshot_meta = meta
        self._snapshot_cache = snap.data
        if reset:
            # Until the snapshot and the RESET are durable the old log is what a crash leaves:
            # the mark goes first down to an entry both hold (the committed prefix).
            agreed = max(self._terms.base[0], min(self._commit_written, self._last))
            self._lowest(p, self._point(agreed))
            old = list(self._segs)
            self._segs = []
            self._rotate(p)
            self._append(p, records.reset_record(meta.index, meta.term))
            p.unlink.extend(old)
            self._last = meta.index
            self._terms.reset((meta.index, meta.term))
            return
        if meta.index <= self._last:
            self._terms.compact((meta.index, meta.term))
        while len(self._segs) > 1 and self._segs[0].max_index <= meta.index:
            p.unlink.append(self._segs.pop(0))

    # Group commit ----------------------------------------------------------------------------

    def begin_sync(self) -> LogSync | None:
        """Capture everything staged into one job (None when nothing was staged)."""
        if self._failed:
            raise LogFailed("a previous sync failed")
        assert self._inflight is None, "one sync job at a time"
        p, self._plan = self._plan, None
        if p is None:
            return None
        steps: list[Step] = []
        mark = self._mark
        low = p.low
        if self._floor is not None and self._floor[0] >= low[0]:
            low = self._floor
        if low[0] < mark[0]:
            mark = low
            steps.append(self._mark_step(mark))
        if p.hardstate is not None:
            steps.extend(self.files.checked_step(n, p.hardstate) for n in HARD_STATE_FILES)
        if p.snapshot is not None:
            steps.append(self.files.checked_step(SNAPSHOT_FILE, p.snapshot))
        writes = []
        for seg in sorted(p.dirty, key=lambda s: s.number):
            step = self.files.write_step(seg.handle)
            if step is not None:
                steps.append(step)
                writes.append((seg, step))
        if p.new_segment:
            steps.append(self.files.dirsync_step())
        if p.unlink:
            steps.extend(self.files.unlink_step(s.name) for s in p.unlink)
            steps.append(self.files.dirsync_step())
        final = self._target_mark()
        if final != mark:
            mark = final
            steps.append(self._mark_step(mark))
        job = LogSync(steps, writes, mark, self._last, p.unlink)
        self._inflight = job
        return job

    def _mark_step(self, point: Point) -> Step:
        self._slot_seq += 1
        slot = records.encode_slot(Mark(self._slot_seq, point[0], point[1], self._boot))
        return self.files.slot_step(VOUCH_FILE, (self._slot_seq % 2) * records.SLOT_SIZE, slot)

    def finish_sync(self, job: LogSync) -> None:
        """The job ran: what it covered is durable."""
        assert job is self._inflight
        self._inflight = None
        for seg, step in job.writes:
            self.files.finish_write(seg.handle, step)
        self._durable_last = job.last
        self._mark = job.mark
        for seg in job.unlinked:
            if seg.handle is not None:
                self.files.release(seg.handle)
                seg.handle = None
        for seg in self._segs[:-1]:  # sealed segments need no handle once synced
            if seg.handle is not None:
                self.files.release(seg.handle)
                seg.handle = None
        if self._floor is not None and self._durable_last >= self._floor[0]:
            log.warning("raft log repaired up to %d: can vouch again", self._floor[0])
            self._floor = None

    def abort_sync(self, job: LogSync) -> None:
        """The job raised: nothing it covered may be acknowledged, ever."""
        self._inflight = None
        self._failed = True

    def sync_now(self) -> None:
        """Run a whole group commit in this thread (tests, tools)."""
        job = self.begin_sync()
        if job is not None:
            try:
                job.run()
            except BaseException:
                self.abort_sync(job)
                raise
            self.finish_sync(job)

    def close(self) -> None:
        for seg in self._segs:
            if seg.handle is not None:
                self.files.release(seg.handle)
                seg.handle = None
        close = getattr(self.files, "close", None)
        if close is not None:
            close()
