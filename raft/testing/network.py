"""The simulated network: partitions of arbitrary sets, and the fate of every frame sent.

A frame between two nodes on different sides of a partition is lost; otherwise it may be lost,
duplicated, damaged in transit (one bit flipped: the codec must reject it) and is delayed by a
random time, hence reordered. Everything is drawn from the simulator's `random.Random`.
"""

from __future__ import annotations

import random


class SimNetwork:
    def __init__(self, rng: random.Random, *, drop: float, duplicate: float, garble: float,
                 max_delay: int) -> None:
        self.rng = rng
        self.drop = drop  # probability that a frame is lost
        self.duplicate = duplicate  # ... that it arrives twice
        self.garble = garble  # ... that a copy arrives damaged
        self.max_delay = max_delay  # a copy arrives after 1..max_delay
        self.side: dict[str, int] = {}  # partition: node -> side (absent: side 0)

    def connected(self, a: str, b: str) -> bool:
        return self.side.get(a, 0) == self.side.get(b, 0)

    def partition(self, *sides: list[str]) -> None:
        """Cut the network into `sides` (nodes in none of them form one more side)."""
        self.side = {}
        for k, side in enumerate(sides, start=1):
            for nid in side:
                self.side[nid] = k

    def heal(self) -> None:
        self.side = {}

    def transmit(self, src: str, dst: str, frame: bytes) -> list[tuple[int, bytes]]:
        """What arrives of `frame` sent now: (delay, bytes) for each copy; none when lost."""
        if not self.connected(src, dst) or self.rng.random() < self.drop:
            return []
        copies = 2 if self.rng.random() < self.duplicate else 1
        out = []
        for _ in range(copies):
            data = frame
            if self.rng.random() < self.garble:
                raw = bytearray(frame)
                raw[self.rng.randrange(len(raw))] ^= 1 << self.rng.randrange(8)
                data = bytes(raw)
            out.append((self.rng.randint(1, self.max_delay), data))
        return out
