"""The values that cross the boundary between the sans-IO core and whoever drives it.

* `HardState`, `SnapshotMeta`, `Snapshot`, `Vouch`: what is (or must become) durable.
* `LogView`: what the core reads at construction (the recovered disk state; `raft.log.RaftLog`
  implements it).
* `Ready`: one batch of work the core hands to its driver (see `raft.core.RaftNode.ready`).
* `Status` / `PeerStatus`: a read-only report for monitoring and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from raft.messages import Entry, Message


class Role(StrEnum):
    FOLLOWER = "follower"
    PRECANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a vote or an acknowledgement leaves: the current term and the
    vote cast in it. `commit` travels along for the log's COMMIT record (not needed for safety:
    it only saves re-learning the commit index from the leader after a restart)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int  # the last entry the snapshot covers
    term: int  # that entry's term
    voters: frozenset[str]  # the configuration in force at `index`


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class Vouch:
    """Whether this node can vouch for its log (protocol-aware recovery, see raft/README.md).

    (`mark`, `mark_term`) names the last entry the node made durable, and so may have
    acknowledged (to a leader, or to itself when counting as leader). A node whose recovered log
    does not hold that entry (it ends below it, or holds another entry there), or whose term/vote
    files were lost, cannot vouch: it neither votes nor campaigns until a leader has repaired its
    log up to `mark`. `amnesia` is permanent: the node forgot votes it cast or entries it
    acknowledged."""

    can_vouch: bool = True
    mark: int = 0
    mark_term: int = 0
    amnesia: bool = False
    reason: str = ""


class LogView(Protocol):
    """The durable state a node starts from (what `raft.log.RaftLog` recovered)."""

    @property
    def hard_state(self) -> HardState: ...

    @property
    def snapshot_meta(self) -> SnapshotMeta | None: ...

    @property
    def entries(self) -> list[Entry]: ...

    @property
    def vouch(self) -> Vouch: ...

    @property
    def boot(self) -> int:
        """How many times this node's log was opened: grows with every restart."""
        ...

    def read_snapshot(self) -> bytes:
        """The data of the durable snapshot (only called when `snapshot_meta` is set)."""
        ...


@dataclass
class Ready:
    """A batch of work. The driver must, in this order:

    1. send `eager` (a leader's appends may leave while it writes its own copy);
    2. persist, with one group commit: `hard_state` (when set), then `snapshot` (install; with
       `snapshot_reset` the whole log is replaced by it), then cut the log from `truncate_from`
       (when set), then append `entries`, then `compact` (the application's own snapshot: write
       it and drop the log prefix it covers);
    3. send `messages` (acknowledgements and votes: only now are they true);
    4. restore the application from `snapshot` (when set), then apply `committed` in order;
    5. call `RaftNode.advance(ready)`.
    """

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    snapshot_reset: bool = False
    truncate_from: int | None = None
    entries: list[Entry] = field(default_factory=list)
    compact: Snapshot | None = None
    eager: list[Message] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)

    def must_persist(self) -> bool:
        return bool(self.hard_state is not None or self.snapshot is not None
                    or self.truncate_from is not None or self.entries or self.compact is not None)


@dataclass(frozen=True, slots=True)
class PeerStatus:
    id: str
    match: int  # highest index known replicated (durable) on the peer
    next: int  # next index to send
    state: str  # probe | replicate | snapshot
    last_contact: int | None  # ticks since the peer last answered; None: never (this term)
    active: bool  # answered within the check-quorum window: "current" in monitoring terms
    lag: int  # leader's last index - match
    snapshot_offset: int  # bytes of the snapshot in transfer acknowledged so far


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    group: str
    role: Role
    term: int
    leader: str | None
    vote: str | None
    commit: int
    applied: int
    first_index: int  # the first index still in the log (snapshot index + 1)
    last_index: int
    stable_index: int  # durable locally
    voters: frozenset[str]
    can_vouch: bool
    vouch_mark: int
    amnesia: bool
    transferee: str | None
    peers: dict[str, PeerStatus]
    counters: dict[str, int]
    leader_commit: int = 0  # the highest commit index known here (a leader's own, or told)

    @property
    def current(self) -> bool:
        """Applied everything this node knows to be committed, its leader's commit included
        (nats-server's isCurrent: a follower that has not received the tail is behind)."""
        return self.leader is not None and self.applied >= max(self.commit, self.leader_commit)
