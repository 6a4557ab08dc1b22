"""A leader's view of one follower: how far it matches, what to send next, flow control.

States (as in etcd): PROBE sends one append at a time until the follower's position is known;
REPLICATE streams appends optimistically, up to `max_inflight` unacknowledged messages;
SNAPSHOT sends snapshot chunks, one at a time. `next` moves back only on a rejection (and only on
one that is not stale: it refers to the append the leader is waiting for, or, in REPLICATE, to an
index above `match`). `match` never decreases, except when the follower restarted (a newer
incarnation) and rejects: then it no longer holds what it acknowledged in its previous life.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class PeerState(StrEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass
class SnapshotTransfer:
    index: int
    term: int
    offset: int = 0  # bytes the follower acknowledged
    sent_tick: int = 0


@dataclass
class Progress:
    next: int
    match: int = 0
    state: PeerState = PeerState.PROBE
    probe_sent: bool = False
    inflight: deque[int] = field(default_factory=deque)  # last index of each append in flight
    last_contact: int = 0  # tick of the last response
    incarnation: int = 0
    snapshot: SnapshotTransfer | None = None

    def become_probe(self) -> None:
        self.state = PeerState.PROBE
        self.probe_sent = False
        self.inflight.clear()
        self.snapshot = None

    def become_replicate(self) -> None:
        self.state = PeerState.REPLICATE
        self.next = max(self.next, self.match + 1)
        self.inflight.clear()
        self.snapshot = None

    def become_snapshot(self, index: int, term: int, tick: int) -> None:
        self.state = PeerState.SNAPSHOT
        self.inflight.clear()
        self.snapshot = SnapshotTransfer(index, term, 0, tick)

    def inflight_full(self, limit: int) -> bool:
        return len(self.inflight) >= limit

    def sent(self, last: int) -> None:
        """An append carrying entries up to `last` left (REPLICATE: optimistic next)."""
        if self.state is PeerState.REPLICATE:
            self.next = last + 1
            self.inflight.append(last)
        elif self.state is PeerState.PROBE:
            self.probe_sent = True

    def update(self, index: int) -> bool:
        """The follower holds everything up to `index`. True when match moved forward."""
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        self.probe_sent = False
        if index <= self.match:
            return False
        self.match = index
        self.next = max(self.next, index + 1)
        return True

    def reject(self, rejected: int, probe_next: int) -> bool:
        """The follower refused an append whose prev_index was `rejected`; `probe_next` is
        where the hint suggests trying. False (and nothing changes) when the rejection is
        stale."""
        if self.state is PeerState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = max(self.match + 1, min(rejected, probe_next))
            self.become_probe()
            return True
        if self.state is PeerState.PROBE:
            if rejected != self.next - 1:
                return False
            self.next = max(self.match + 1, min(rejected, probe_next), 1)
            self.probe_sent = False
            return True
        return False

    def restarted(self, rejected: int, probe_next: int) -> None:
        """The follower came back with a newer incarnation and refused an append: whatever it
        acknowledged before may be gone (a damaged disk), so start over from nothing known."""
        self.match = 0
        self.become_probe()
        self.next = max(1, min(rejected, probe_next))
