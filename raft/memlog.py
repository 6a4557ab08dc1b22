"""The core's in-memory view of its log: the entries after the last snapshot, and what of them
the driver has been handed (and so will be or is on disk).

`handed` is the last index given out in a Ready; entries after it go into the next Ready. A
conflict truncation at or below `handed` must also cut the disk log, so it is remembered in
`pending_truncate` for the next Ready. `stable` is the last index known durable *and* equal to
the entry in memory; `bound` caps what the Ready in flight may make stable when the log changed
underneath it (a truncation or a snapshot reset while it was being written).
"""

from __future__ import annotations

from raft.messages import Entry

_NO_BOUND = 1 << 63


class MemLog:
    __slots__ = ("bound", "entries", "handed", "pending_truncate", "snap_index", "snap_term",
                 "stable")

    def __init__(self, snap_index: int, snap_term: int, entries: list[Entry]) -> None:
        if entries and entries[0].index != snap_index + 1:
            raise ValueError("entries must follow the snapshot")
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.entries = entries
        self.stable = self.handed = self.last_index
        self.pending_truncate: int | None = None
        self.bound = _NO_BOUND

    @property
    def first_index(self) -> int:
        return self.snap_index + 1

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    def term(self, index: int) -> int | None:
        """The term of entry `index`; None when it is compacted away or beyond the end."""
        if index == self.snap_index:
            return self.snap_term
        k = index - self.snap_index - 1
        if 0 <= k < len(self.entries):
            return self.entries[k].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snap_index - 1]

    def slice(self, lo: int, hi: int, max_bytes: int = 0, max_entries: int = 0) -> list[Entry]:
        """Entries lo..hi (inclusive), stopping before `max_bytes` of data (at least one entry)
        or after `max_entries`."""
        lo = max(lo, self.snap_index + 1)
        hi = min(hi, self.last_index)
        if lo > hi:
            return []
        a, b = lo - self.snap_index - 1, hi - self.snap_index
        if max_entries and b - a > max_entries:
            b = a + max_entries
        out = self.entries[a:b]
        if max_bytes:
            total = 0
            for k, e in enumerate(out):
                total += len(e.data)
                if total > max_bytes and k > 0:
                    return out[:k]
        return out

    def append(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)

    def truncate(self, index: int) -> None:
        """Drop entries >= index (a real conflict)."""
        del self.entries[index - self.snap_index - 1:]
        if index <= self.handed:
            self.pending_truncate = (index if self.pending_truncate is None
                                     else min(self.pending_truncate, index))
            self.handed = index - 1
            self.bound = min(self.bound, index - 1)
        self.stable = min(self.stable, index - 1)

    def compact(self, index: int) -> None:
        """Drop entries <= index (covered by a snapshot; index <= last_index). Entries it
        covers that were never handed out are not written: the snapshot stands for them."""
        term = self.term(index)
        assert term is not None, f"compact to {index} outside the log"
        del self.entries[:index - self.snap_index]
        self.snap_index, self.snap_term = index, term
        self.handed = max(self.handed, index)

    def reset(self, index: int, term: int, agreed: int) -> None:
        """Replace the whole log by a snapshot at (index, term). `agreed`: an index up to which
        the old disk log certainly equals the new history (the commit index)."""
        self.entries = []
        self.snap_index, self.snap_term = index, term
        self.handed = index
        self.pending_truncate = None
        self.bound = min(self.bound, agreed)
        self.stable = min(self.stable, agreed)

    def unhanded(self) -> list[Entry]:
        return self.entries[self.handed - self.snap_index:] if self.last_index > self.handed \
            else []

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term`: where a log ending in `term`
        may agree with ours (etcd's findConflictByTerm). Below our snapshot terms are unknown:
        such an index is returned as it is (the other log needs our snapshot)."""
        index = min(index, self.last_index)
        while index > self.snap_index:
            t = self.term(index)
            if t is not None and t <= term:
                break
            index -= 1
        return index
