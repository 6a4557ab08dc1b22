"""Tunables of a Raft node, in ticks (the driver decides how long a tick is)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RaftConfig:
    """Defaults match nats-server with a 100 ms tick: heartbeat every second, election timeout
    randomized in 4-9 s. Tests use the same tick counts with a shorter tick."""

    heartbeat_ticks: int = 10
    election_ticks_min: int = 40  # also the check-quorum window and the leader lease
    election_ticks_max: int = 90
    prevote: bool = True
    check_quorum: bool = True
    max_inflight: int = 64  # AppendEntries messages in flight per follower (flow control)
    max_batch_bytes: int = 1 << 20  # entry data per AppendEntries
    max_batch_entries: int = 8192
    snapshot_chunk_bytes: int = 1 << 20
    transfer_ticks: int = 0  # give up a leadership transfer after this (0: election_ticks_min)

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_ticks < self.election_ticks_min <= self.election_ticks_max:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks_min <= "
                             "election_ticks_max")
        if self.max_inflight < 1 or self.max_batch_entries < 1 or self.snapshot_chunk_bytes < 1:
            raise ValueError("max_inflight, max_batch_entries, snapshot_chunk_bytes must be >= 1")

    @property
    def transfer_timeout(self) -> int:
        return self.transfer_ticks or self.election_ticks_min
