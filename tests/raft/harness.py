"""Helpers for unit tests of the core: an in-memory LogView and manual driving."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from raft.core import RaftNode
from raft.messages import Entry, EntryType, Message
from raft.options import RaftConfig
from raft.state import HardState, Ready, SnapshotMeta, Vouch

G = "g"
PEERS = ("n1", "n2", "n3")
CFG = RaftConfig(heartbeat_ticks=2, election_ticks_min=10, election_ticks_max=20)


@dataclass
class View:
    hard_state: HardState = field(default_factory=HardState)
    snapshot_meta: SnapshotMeta | None = None
    entries: list[Entry] = field(default_factory=list)
    vouch: Vouch = field(default_factory=Vouch)
    boot: int = 1
    snapshot: bytes = b""

    def read_snapshot(self) -> bytes:
        return self.snapshot


def log_of(*terms: int, start: int = 1) -> list[Entry]:
    """Entries start, start+1, ... with the given terms (data names index and term)."""
    return [Entry(t, start + i, EntryType.NORMAL, b"%d@%d" % (start + i, t))
            for i, t in enumerate(terms)]


def node(nid: str = "n1", *, entries: list[Entry] | None = None, term: int = 0,
         vote: str | None = None, commit: int = 0, vouch: Vouch | None = None,
         config: RaftConfig = CFG, peers: tuple[str, ...] | None = PEERS, seed: int = 0,
         boot: int = 1) -> RaftNode:
    view = View(HardState(term, vote, commit), None, list(entries or []), vouch or Vouch(),
                boot)
    return RaftNode(nid, peers, view, config, random.Random(seed), group=G)


def drain(n: RaftNode) -> list[Ready]:
    """Handle every Ready at once as a driver with an instant disk would."""
    out = []
    while (rd := n.ready()) is not None:
        n.advance(rd)
        out.append(rd)
    return out


def sent(readies: list[Ready]) -> list[Message]:
    return [m for rd in readies for m in rd.eager + rd.messages]


def of_type(msgs: list[Message], kind: type) -> list:
    return [m for m in msgs if isinstance(m, kind)]


def elect(n: RaftNode) -> list[Message]:
    """Make `n` leader: time out, win the pre-vote and the vote from every peer."""
    from raft.messages import RequestVote, VoteResponse
    from raft.state import Role

    for _ in range(n.cfg.election_ticks_max + 1):
        n.tick()
        if n.role is not Role.FOLLOWER:
            break
    msgs = sent(drain(n))
    for m in of_type(msgs, RequestVote):
        n.step(VoteResponse(G, m.dst, n.id, m.term, True, m.prevote))
    msgs = sent(drain(n))
    for m in of_type(msgs, RequestVote):
        n.step(VoteResponse(G, m.dst, n.id, m.term, True, m.prevote))
    assert n.role is Role.LEADER, n.role
    return sent(drain(n))
