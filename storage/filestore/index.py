"""`StoreIndex`: a FileStore's in-memory index of its messages, and every change of their state.

It holds the segments in sequence order (`bases[k]` is `segs[k].base`, for bisecting), the
subject table, the counts (`msgs`, `bytes`, `removals`), the first live sequence and the last
used one, the damaged ranges and the ttl heap. A message leaves only through `delete_at` (one
entry) or `drop_whole` (every live entry of a segment), which keep all of those in step and owe
the disk a tombstone (`pending_tombs`) where moving the floor does not say it; `drop_dead_front`
then retires front segments left without live messages, handing each to `on_bury` (the sync
planner unlinks it at the next sync). No I/O here.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator

from storage.filestore.subjecttable import SubjectTable
from storage.ranges import RangeSet
from storage.segment import DAMAGED, DELETED, LIVE, Segment


def _ignore(seg: Segment) -> None:
    pass


class StoreIndex:
    active: Segment  # the segment appended to; set when the store is opened

    def __init__(self, name: str) -> None:
        self.name = name  # the store's, for log messages
        self.subjects = SubjectTable()
        self.segs: list[Segment] = []
        self.bases: list[int] = []
        self.last_seq = 0
        self.last_ts = 0
        self.first = 1  # the first live seq, or last_seq + 1
        self.msgs = 0
        self.bytes = 0
        self.removals = 0  # MessageStore.removals: counted in delete_at / drop_whole
        self.damaged = RangeSet()
        self.ttl_heap: list[tuple[int, int]] = []  # (expiry, seq)
        self.pending_tombs = array("Q")  # removals the disk does not know yet (DEL records)
        self.compact_check = False  # deletions happened: look for a segment to compact
        self.on_bury: Callable[[Segment], None] = _ignore  # a front segment left the index

    def floor(self) -> int:
        """The first sequence not known to be gone: the first live or damaged one."""
        d = self.damaged.first()
        return self.first if d is None or d > self.first else d

    def locate(self, seq: int) -> tuple[Segment, int] | None:
        """The segment and entry index holding `seq` (in any state), or None."""
        k = bisect_right(self.bases, seq) - 1
        if k < 0:
            return None
        seg = self.segs[k]
        i = seg.find(seq)
        return (seg, i) if i >= 0 else None

    def seg_pos(self, seg: Segment) -> int:
        k = bisect_left(self.bases, seg.base)
        while self.segs[k] is not seg:
            k += 1
        return k

    def live_in(self, lo: int, hi: int) -> Iterator[tuple[Segment, int]]:
        """(segment, index) of each live entry with lo <= seq <= hi. The caller may mark each
        one deleted or damaged as it goes (flags change, positions do not)."""
        k = max(0, bisect_right(self.bases, lo) - 1)
        for seg in self.segs[k:]:
            if seg.base > hi:
                return
            seqs, flags = seg.seqs, seg.flags
            for i in range(seg.lower(lo), len(seqs)):
                if seqs[i] > hi:
                    break
                if flags[i] == LIVE:
                    yield seg, i

    def scan_first(self) -> int:
        for seg in self.segs:
            if seg.live:
                return seg.seqs[seg.flags.find(LIVE)]
        return self.last_seq + 1

    # Removing messages

    def delete_at(self, seg: Segment, i: int, flag: int = DELETED) -> None:
        """Mark entry `i` deleted (or damaged) and update every count. The caller drops dead
        front segments afterwards."""
        seq = seg.seqs[i]
        seg.flags[i] = flag
        size = seg.sizes[i]
        seg.live -= 1
        seg.live_bytes -= size
        local = seg.sids[i]
        seg.lsub_live[local] -= 1
        gid = seg.lsub_gid[local]
        subs = self.subjects
        count = subs.count[gid] - 1
        subs.count[gid] = count
        if not count:
            subs.nsubj -= 1
            subs.stale_last.discard(gid)
        elif seq == subs.last[gid]:
            subs.stale_last.add(gid)
        self.msgs -= 1
        self.bytes -= size
        self.removals += 1
        self.compact_check = True
        front = seq == self.first
        if front:
            self.advance_first(seg, i)
        if flag == DELETED and (not front or self.damaged):
            self.pending_tombs.append(seq)

    def advance_first(self, seg: Segment, i: int) -> None:
        j = seg.flags.find(LIVE, i + 1)
        if j >= 0:
            self.first = seg.seqs[j]
            return
        for nxt in self.segs[self.seg_pos(seg) + 1:]:
            if nxt.live:
                self.first = nxt.seqs[nxt.flags.find(LIVE)]
                return
        self.first = self.last_seq + 1

    def drop_whole(self, seg: Segment) -> int:
        """Delete every live message of a segment at once, using its per-subject counts."""
        n = seg.live
        if not n:
            return 0
        front = self.first >= seg.base
        if not front or self.damaged:
            self.pending_tombs.extend(seg.seqs[i] for i in seg.live_entries())
        last_in_seg = seg.last_entry_seq()
        subs = self.subjects
        for local, gid in enumerate(seg.lsub_gid):
            c = seg.lsub_live[local]
            if not c:
                continue
            seg.lsub_live[local] = 0
            count = subs.count[gid] - c
            subs.count[gid] = count
            if not count:
                subs.nsubj -= 1
                subs.stale_last.discard(gid)
            elif seg.base <= subs.last[gid] <= last_in_seg:
                subs.stale_last.add(gid)
        self.msgs -= n
        self.bytes -= seg.live_bytes
        self.removals += n
        seg.live = 0
        seg.live_bytes = 0
        seg.flags = seg.flags.replace(bytes([LIVE]), bytes([DELETED]))
        if front:
            self.advance_first(seg, len(seg.seqs) - 1)
        return n

    def drop_dead_front(self) -> None:
        """Retire (`on_bury`: unlinked at the next sync) front segments without live messages.
        The active segment stays, and so does a segment with damage in its range (it awaits
        repair)."""
        segs = self.segs
        while len(segs) > 1 and not segs[0].live:
            first_damaged = self.damaged.first()
            if first_damaged is not None and first_damaged < self.bases[1]:
                return
            seg = segs.pop(0)
            self.bases.pop(0)
            self.on_bury(seg)

    # Damage

    def mark_damaged(self, seg: Segment, i: int) -> None:
        """A live entry whose record fails verification: it is gone, and reported damaged."""
        self.delete_at(seg, i, DAMAGED)
        self.damaged.add(seg.seqs[i], seg.seqs[i])

    def forget_damage(self, lo: int, hi: int) -> None:
        """Accept that damaged sequences in [lo, hi] are gone (tombstones make it last)."""
        for a, b in self.damaged.ranges():
            if b >= lo and a <= hi:
                self.pending_tombs.extend(range(max(a, lo), min(b, hi) + 1))
        self.damaged.remove(lo, hi)
        self.drop_dead_front()
