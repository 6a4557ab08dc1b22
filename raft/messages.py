"""Log entries and the messages Raft peers exchange (plain data; encoding lives in `raft.codec`).

Every message names its group (one route connection carries many groups), its sender and its
receiver, and the sender's term. Entries inside an AppendEntries are contiguous, so their indexes
are implied by `prev_index` on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class EntryType(IntEnum):
    NORMAL = 0  # application data
    NOOP = 1  # appended by every new leader: lets it commit its term (§5.4.2)
    CONFIG = 2  # the complete new voter set (single-server change, see raft.membership)


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType
    data: bytes


class VoteReject(IntEnum):
    """Why a vote (or pre-vote) was refused: reported for status and tests."""

    NONE = 0
    STALE_TERM = 1
    ALREADY_VOTED = 2
    LOG_BEHIND = 3  # the candidate's log is less up to date than ours
    IN_LEASE = 4  # we hear from a healthy leader (pre-vote / check-quorum)
    CANNOT_VOUCH = 5  # our log lost entries we acknowledged: we may not vote (raft.log)


@dataclass(slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term); no entries is a heartbeat."""

    group: str
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    commit: int
    entries: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class AppendResponse:
    """Follower -> leader. On success `index` is the last index this message made durable and
    matching (prev_index + len(entries)); on rejection it is the rejected prev_index, and
    (hint_index, hint_term) is the follower's best guess where the logs agree. `incarnation`
    grows with every restart of the sender, so the leader can tell a stale reply from a reply
    of a follower that restarted with less log than it had acknowledged."""

    group: str
    src: str
    dst: str
    term: int
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0
    incarnation: int = 0


@dataclass(slots=True)
class RequestVote:
    """Candidate -> voter. `prevote`: a trial run that changes no term (PreVote); `transfer`:
    sent on a TimeoutNow, so voters ignore their leader lease."""

    group: str
    src: str
    dst: str
    term: int
    last_index: int
    last_term: int
    prevote: bool = False
    transfer: bool = False


@dataclass(slots=True)
class VoteResponse:
    group: str
    src: str
    dst: str
    term: int
    granted: bool
    prevote: bool = False
    reason: VoteReject = VoteReject.NONE


@dataclass(slots=True)
class InstallSnapshot:
    """One chunk of the leader's snapshot at (index, snap_term). `size` and `crc` describe the
    whole snapshot so the follower verifies what it assembled before installing it."""

    group: str
    src: str
    dst: str
    term: int
    index: int
    snap_term: int
    voters: tuple[str, ...]
    size: int
    crc: int
    offset: int
    chunk: bytes
    done: bool


@dataclass(slots=True)
class SnapshotResponse:
    """`offset`: how many bytes of snapshot `index` the follower holds (the next chunk to send);
    `done`: the snapshot is installed and durable (or the follower already had that index)."""

    group: str
    src: str
    dst: str
    term: int
    index: int
    offset: int
    done: bool
    incarnation: int = 0


@dataclass(slots=True)
class TimeoutNow:
    """Leader -> chosen successor: start an election now (leadership transfer)."""

    group: str
    src: str
    dst: str
    term: int


Message = (AppendEntries | AppendResponse | RequestVote | VoteResponse | InstallSnapshot
           | SnapshotResponse | TimeoutNow)


def needs_sync(msg: Message) -> bool:
    """Must the sender's pending writes be durable before this message leaves?

    Acknowledgements (append and snapshot responses), votes and real vote requests (they carry a
    term and a self-vote) promise something about the sender's disk, so they wait for the fsync.
    A leader's appends, snapshot chunks and TimeoutNow, and pre-votes, promise nothing about the
    sender's disk: they may go out while the leader writes its own copy (Raft thesis §10.2.1;
    the leader counts itself only once its copy is durable)."""
    if isinstance(msg, (AppendEntries, InstallSnapshot, TimeoutNow)):
        return False
    return not (isinstance(msg, RequestVote) and msg.prevote)
