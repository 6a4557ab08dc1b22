"""Sorted, disjoint, inclusive integer ranges: the damaged sequences of a store. Pure."""

from __future__ import annotations

from bisect import bisect_right


class RangeSet:
    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self._r: list[list[int]] = []
        for lo, hi in ranges or ():
            self.add(lo, hi)

    def __bool__(self) -> bool:
        return bool(self._r)

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self._r, [seq, float("inf")]) - 1
        return i >= 0 and self._r[i][1] >= seq

    def ranges(self) -> list[tuple[int, int]]:
        return [(lo, hi) for lo, hi in self._r]

    def first(self) -> int | None:
        return self._r[0][0] if self._r else None

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._r)

    def first_at_or_after(self, seq: int) -> int | None:
        for lo, hi in self._r:
            if hi >= seq:
                return max(lo, seq)
        return None

    def add(self, lo: int, hi: int) -> None:
        if lo > hi:
            return
        merged = [lo, hi]
        keep = []
        for r in self._r:
            if r[1] < merged[0] - 1 or r[0] > merged[1] + 1:
                keep.append(r)
            else:
                merged = [min(r[0], merged[0]), max(r[1], merged[1])]
        keep.append(merged)
        keep.sort()
        self._r = keep

    def remove(self, lo: int, hi: int) -> None:
        """Remove [lo, hi]."""
        out = []
        for a, b in self._r:
            if b < lo or a > hi:
                out.append([a, b])
                continue
            if a < lo:
                out.append([a, lo - 1])
            if b > hi:
                out.append([hi + 1, b])
        self._r = out

    def clip(self, lo: int, hi: int) -> None:
        """Keep only what lies within [lo, hi]."""
        self._r = [[max(a, lo), min(b, hi)] for a, b in self._r if b >= lo and a <= hi]
